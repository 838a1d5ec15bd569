"""Small MRML helpers of the scene logic: the attributes that mark LiverLVT's nodes, a scene
transaction (roll back on error or Cancel), node removal with display/storage nodes, subject
hierarchy items, JSON of numpy values, bounding boxes."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

# attributes / tags that let the scene logic find its own nodes again
ROLE = "LiverLVT.role"
VOLUME_ID = "LiverLVT.volumeID"
LESION_TAG = "LiverLVT.lesion"
LABEL_TAG = "LiverLVT.label"
AXIS_ATTRIBUTE = "LiverLVT.axis"

Box = Tuple[slice, ...]


class SceneTransaction:
    """Remove every node added inside the block when the block raises (Cancel, errors), so
    the scene is left as it was."""

    def __init__(self, scene):
        self.scene = scene

    def __enter__(self):
        self.before = set(node_ids(self.scene))
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        added = [i for i in node_ids(self.scene) if i not in self.before]
        for node_id in reversed(added):
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)
        return False


def node_ids(scene) -> List[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def nodes_of_class(scene, node_class: str) -> list:
    nodes = scene.GetNodesByClass(node_class)
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def remove_node(scene, node) -> None:
    """Remove a node with its display and storage nodes (the scene does not cascade)."""
    helpers = []
    for getter, count in (("GetNthDisplayNode", "GetNumberOfDisplayNodes"),
                          ("GetNthStorageNode", "GetNumberOfStorageNodes")):
        if hasattr(node, count):
            helpers += [getattr(node, getter)(i) for i in range(getattr(node, count)())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and scene.IsNodePresent(helper):
            scene.RemoveNode(helper)


def segment_tag(segment, name: str) -> Optional[str]:
    import vtk

    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else None


def sh_item(sh, node):
    """The node's subject hierarchy item; created headless, where no plugin adds it."""
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    return item


def folder_item(sh, parent, name: str, volume_id: str):
    """The LiverLVT measurements folder of a volume under ``parent`` (made when missing)."""
    import vtk

    children = vtk.vtkIdList()
    sh.GetItemChildren(parent, children)
    for i in range(children.GetNumberOfIds()):
        item = children.GetId(i)
        if (sh.GetItemAttribute(item, ROLE) == "folder"
                and sh.GetItemAttribute(item, VOLUME_ID) == volume_id):
            return item
    folder = sh.CreateFolderItem(parent, name)
    sh.SetItemAttribute(folder, ROLE, "folder")
    sh.SetItemAttribute(folder, VOLUME_ID, volume_id)
    return folder


def json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def bounding_box(mask: np.ndarray) -> Optional[Box]:
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)
