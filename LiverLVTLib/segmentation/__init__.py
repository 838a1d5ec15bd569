"""CT -> labels: ``pipeline.segment_ct(ct, SegmentOptions)`` runs the model card's stages
(``model``: card, weights check, ``build_network``), sliding-window inference (``inference``) and
the anatomical clean-up (``postprocess``). Never analyses, never prints."""
