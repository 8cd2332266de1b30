"""COCO JSON: every malformed file ends in a ``CocoFormatError`` naming it, a named bad sample, or a documented skip."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segkit.datasets import BadSampleError, CocoFormatError, build_dataset
from tests.reliability._coco import H, W, coco_base, write_coco_root, write_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
RLE_STRINGS = st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=120), max_size=12)
SEGMENTATIONS = st.one_of(
    st.just([]),
    st.lists(st.lists(st.floats(-40, 60) | st.integers(-40, 60), max_size=9), max_size=3),  # incl. < 3 points
    st.lists(
        st.lists(st.sampled_from([1e12, -1e12, float("nan"), float("inf"), 3]), min_size=6, max_size=6), max_size=1
    ),
    st.fixed_dictionaries({"size": st.sampled_from([[H, W], [W, H], [H], "12x16", [H, W, 1]]), "counts": RLE_STRINGS}),
    st.fixed_dictionaries({"size": st.just([H, W]), "counts": st.lists(st.integers(-5, H * W + 5), max_size=6)}),
)


def _paths(node, prefix=()):
    """Every (container path, key) of the document, so a mutation can reach any field."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield prefix, key
        yield from _paths(value, (*prefix, key))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _entries(doc, key):
    """The dict entries of ``doc[key]`` if that is still a list (an earlier mutation may have replaced it)."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


@st.composite
def broken_documents(draw):
    doc = coco_base()
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        # Half the actions break the format; the other half keep it valid but stress loading (sizes that
        # differ from the image, a missing file, degenerate boxes, any valid polygon).
        action = draw(
            st.sampled_from(
                ["delete", "replace", "duplicate", "segmentation", "bbox", "category"]
                + ["polygon", "no_bbox", "size", "file"]
            )  # fmt: skip
        )
        anns, images = _entries(doc, "annotations"), _entries(doc, "images")
        if action in ("size", "file") and images:
            image = draw(st.sampled_from(images))
            if action == "size":
                image[draw(st.sampled_from(["height", "width"]))] = draw(st.integers(1, 40))
            else:
                image["file_name"] = draw(st.sampled_from(["a.png", "b.png", "missing.png", "sub/a.png"]))
        elif action in ("segmentation", "bbox", "category", "polygon", "no_bbox") and anns:
            ann = draw(st.sampled_from(anns))
            if action == "segmentation":
                ann["segmentation"] = draw(SEGMENTATIONS)
            elif action == "polygon":  # valid: 3 to 6 points, in or slightly outside the image
                n = draw(st.integers(3, 6))
                ann["segmentation"] = [draw(st.lists(st.floats(-3, W + 3), min_size=2 * n, max_size=2 * n))]
            elif action == "no_bbox":
                ann.pop("bbox", None)
            elif action == "bbox":  # zero, negative and huge sizes
                ann["bbox"] = draw(st.lists(st.integers(-20, 30) | st.floats(-1e9, 1e9), min_size=3, max_size=5))
            else:
                ann["category_id"] = draw(st.integers(-2, 5))
        elif paths:
            parent_path, key = draw(st.sampled_from(paths))
            parent = _get(doc, parent_path)
            if action == "delete":
                del parent[key]
            elif action == "duplicate" and isinstance(parent, list):
                parent.append(copy.deepcopy(parent[key]))
            else:
                parent[key] = draw(JSON_VALUES)
    return doc


def _check_sample(sample, name, num_classes):
    assert sample["image"].shape == (3, H, W) and torch.isfinite(sample["image"]).all()
    if name == "coco_semantic":
        values = set(torch.unique(sample["mask"]).tolist())
        assert values <= set(range(num_classes)) | {255}
    else:
        target = sample["target"]
        n = len(target["labels"])
        assert target["masks"].shape == (n, H, W) and target["boxes"].shape == (n, 4)
        boxes = target["boxes"]
        assert torch.isfinite(boxes).all() and (boxes[:, 2:] > boxes[:, :2]).all()


def _load_everything(root, ann, name, mode):
    """Construct and read every sample; return how it ended ("ok", "format error", "bad sample")."""
    try:
        ds = build_dataset(name, root=root, split="val", on_bad_sample=mode)
    except CocoFormatError as exc:
        assert str(ann) in str(exc)
        return "format error"
    except BadSampleError as exc:  # an image named in the file that does not exist ("raise")
        assert str(root / "val2017") in str(exc)
        return "bad sample"
    ended = "ok"
    for i in range(len(ds)):
        try:
            sample = ds[i]
        except BadSampleError as exc:  # e.g. a height/width that is not the image's: named file and sample
            assert str(root / "val2017") in str(exc) and re.search(r"sample \d+|every one", str(exc))
            ended = "bad sample"
            continue
        _check_sample(sample, name, ds.num_classes)
    return ended


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return root, write_coco_root(root)


def test_base_document_is_valid(coco_root):
    root, ann = coco_root
    write_json(ann, coco_base())
    for name in ("coco", "coco_semantic"):
        assert _load_everything(root, ann, name, "raise") == "ok"


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=broken_documents(), mode=st.sampled_from(["raise", "skip"]))
def test_fuzzed_coco_json_ends_in_a_named_error_or_a_documented_skip(coco_root, watchdog, doc, mode):
    root, ann = coco_root
    ann.write_text(json.dumps(doc))  # NaN and Infinity are written as the JSON extensions Python reads back
    for name in ("coco", "coco_semantic"):
        _load_everything(root, ann, name, mode)


def _edited(edit):
    doc = coco_base()
    edit(doc)
    return doc


def _set(path, value):
    def edit(doc):
        *parents, key = path
        _get(doc, parents)[key] = value

    return edit


@pytest.mark.parametrize(
    "edit, reason",
    [
        (_set(("images", 0, "id"), "1"), "images[0]: bad 'id'"),
        (_set(("images", 1, "height"), "12"), "images[1]: bad 'height'"),
        (_set(("images", 1, "width"), 0), "images[1]: bad 'width'"),
        (_set(("images", 0, "file_name"), "/etc/passwd"), "images[0]: bad 'file_name'"),
        (_set(("images", 0, "file_name"), "../a.png"), "images[0]: bad 'file_name'"),
        (_set(("images", 1), "b.png"), "images[1]: expected an object"),
        (_set(("categories", 0, "id"), None), "categories[0]: bad 'id'"),
        (lambda d: d["images"][1].pop("file_name"), "images[1] has no 'file_name'"),
        (lambda d: d["annotations"][0].pop("image_id"), "annotations[0] (id 1) has no 'image_id'"),
        (_set(("annotations", 1, "bbox"), "3 2 6 4"), "(id 2): 'bbox' must be [x, y, width, height]"),
        (_set(("annotations", 1, "bbox"), [3, 2, None, 4]), "(id 2): 'bbox' must be [x, y, width, height]"),
        (_set(("annotations", 0, "iscrowd"), "no"), "(id 1): 'iscrowd' must be 0 or 1"),
        (_set(("annotations", 0, "segmentation"), []), "(id 1): empty polygon list"),
        (_set(("annotations", 0, "segmentation"), [[1, 1, 5, 5]]), "(id 1): bad polygon (need an even number >= 6"),
        (_set(("annotations", 0, "segmentation"), [[1, 1, 5, 5, 9]]), "(id 1): bad polygon (need an even number >= 6"),
        # pycocotools crashes (huge) or loops forever (NaN) on these: refused before it sees them.
        (_set(("annotations", 0, "segmentation"), [[0, 0, 1e9, 0, 1e9, 1e9]]), "(id 1): bad polygon (coordinates far"),
        (_set(("annotations", 0, "segmentation"), [[0, 0, float("nan"), 0, 5, 5]]), "(id 1): bad polygon (non-numeric"),
        (_set(("annotations", 0, "segmentation"), [[0, 0, "5", 0, 5, 5]]), "(id 1): bad polygon (non-numeric"),
        (_set(("annotations", 1, "segmentation", "size"), [W, H]), "(id 2): bad RLE size [16, 12] for a 12x16 image"),
        (_set(("annotations", 1, "segmentation", "size"), 12), "(id 2): bad RLE size 12 for a 12x16 image"),
        # Compressed strings that pycocotools would decode into uninitialised or out-of-bounds memory.
        (_set(("annotations", 1, "segmentation", "counts"), "1"), "(id 2): bad RLE counts (must be non-negative"),
        (_set(("annotations", 1, "segmentation", "counts"), "0000p"), "(id 2): bad RLE counts (malformed compressed"),
        (_set(("annotations", 1, "segmentation", "counts"), "zz"), "(id 2): bad RLE counts (malformed compressed"),
        (_set(("annotations", 2, "segmentation", "counts"), [30, -20, 182]), "(id 3): bad RLE counts (must be non-neg"),
        (_set(("annotations", 2, "segmentation", "counts"), [30, 20]), "(id 3): bad RLE counts (must be non-negative"),
        (_set(("annotations", 2, "segmentation", "counts"), [30, "20"]), "(id 3): bad RLE counts (a list of integers"),
        (_set(("annotations", 2, "category_id"), 2), "(id 3): unknown category_id 2"),
        (_set(("annotations", 2, "image_id"), 7), "(id 3): unknown image_id 7"),
        (lambda d: d["images"].append(dict(d["images"][0])), "images[2]: duplicate image id 1"),
        (lambda d: d["categories"].append({"id": 3, "name": "x"}), "categories[2]: duplicate category id 3"),
        (lambda d: d["annotations"].append(dict(d["annotations"][0])), "annotations[3] (id 1): duplicate annotation"),
        (lambda d: d.pop("images"), "missing key 'images' (a list)"),
    ],
)
def test_each_malformed_field_is_named(coco_root, edit, reason):
    root, ann = coco_root
    write_json(ann, _edited(edit))
    for name in ("coco", "coco_semantic"):
        with pytest.raises(CocoFormatError) as info:
            build_dataset(name, root=root, split="val")
        assert str(ann) in str(info.value) and reason in str(info.value), str(info.value)


def test_the_rle_string_check_agrees_with_pycocotools_on_valid_masks():
    from pycocotools import mask as mask_utils

    from segkit.datasets.coco import _rle_string_counts

    rng = np.random.default_rng(0)
    for shape in [(12, 16), (1, 1), (200, 3), (64, 64)]:
        m = np.asfortranarray(rng.random(shape) < rng.random())
        rle = mask_utils.encode(m.astype(np.uint8))
        counts = _rle_string_counts(rle["counts"].decode(), "t")
        # Independent reference: the uncompressed runs of the mask in column-major order.
        flat = m.reshape(-1, order="F").astype(np.int8)
        edges = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1] if flat.size else 0]))
        runs = np.diff(np.r_[0, edges]).tolist()
        assert sum(counts) == m.size and counts[: len(runs)] == runs[: len(counts)]


def test_degenerate_boxes_are_skipped_and_a_missing_bbox_comes_from_the_mask(coco_root):
    root, ann = coco_root
    doc = coco_base()
    doc["annotations"][0]["bbox"] = [1, 1, 0, 6]  # zero width: dropped by `coco`
    doc["annotations"][2]["bbox"] = [2, 6, -2, 12]  # negative width: dropped
    del doc["annotations"][1]["bbox"]  # absent: the mask's box (rows 2..5, columns 3..8)
    write_json(ann, doc)
    ds = build_dataset("coco", root=root, split="val")
    first, second = ds[0]["target"], ds[1]["target"]
    assert first["labels"].tolist() == [2] and first["boxes"].tolist() == [[3.0, 2.0, 9.0, 6.0]]
    assert second["labels"].tolist() == [] and second["masks"].shape == (0, H, W)  # no instance left
    semantic = build_dataset("coco_semantic", root=root, split="val")  # boxes play no part in semantic masks
    assert (semantic[0]["mask"] == 1).any() and (semantic[1]["mask"] == 2).sum() == 20
