"""Label convention shared by every stage (label maps on the CT grid, uint8)."""

BACKGROUND = 0
LIVER = 1  # liver parenchyma
VESSEL = 2  # hepatic vessels inside the liver (portal + hepatic veins)
TUMOR = 3  # liver tumor (any focal liver lesion)

LABEL_NAMES = {BACKGROUND: "background", LIVER: "liver", VESSEL: "vessel", TUMOR: "tumor"}

# Network output channels (multi-label sigmoid head, LVT design). Channel c predicts the
# multi-hot target of class CHANNELS[c]; the liver channel covers liver ∪ vessel ∪ tumor.
CHANNELS = ("liver", "vessel", "tumor")
