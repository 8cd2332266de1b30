"""The texts of the mask-encoding errors: each names a file, says why, and gives the remedy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segkit.datasets.mask_stats import MaskStats, palette_block

if TYPE_CHECKING:
    from segkit.datasets.mask_encoding import MaskEncoding

__all__ = [
    "bad_value_message",
    "cli_set",
    "colour_message",
    "gap_message",
    "ignore_heavy_message",
    "odd_mode_message",
    "stray_message",
]


def cli_set(key: str, value: Any) -> str:
    """The command-line form of a dataset argument, as ``segkit train`` (``--data`` or ``--config``) takes it.

    Example:
        >>> cli_set("mask_values", [0, 255])
        "--set 'data.mask_values=[0,255]'"
    """
    return f"--set 'data.{key}={json.dumps(value, separators=(',', ':'))}'"


def odd_mode_message(path: Path, mode: str, group: str) -> str:
    """A sampled file whose kind (colour or single-channel) differs from the others'."""
    if group == "grey":
        return f"{path}: an RGB mask (mode {mode}) among single-channel masks; pass palette= to map colours to classes"
    return f"{path}: a single-channel mask (mode {mode}) among RGB colour masks; save it as the others are"


def gap_message(path: Path, labelled: list[int], gaps: list[int], ign: int, has_ign: bool, files: int) -> str:
    """Grey values with gaps (``{0, 85, 170}``): the values found and the ``mask_values`` to pass."""
    shown = ", ".join(str(g) for g in gaps[:6]) + (", ..." if len(gaps) > 6 else "")
    remedy = f"mask_values={labelled} (segkit train: {cli_set('mask_values', labelled)})"
    if has_ign:
        remedy += f"; {ign} stays ignore_index, or mask_values={[*labelled, ign]} if {ign} is a class"
    if max(labelled) < ign:
        k = max(labelled) + 1
        remedy += (
            f"; or, if they are indices and those classes are just absent, confirm with num_classes={k} "
            f"({cli_set('num_classes', k)})"
        )
    return (
        f"{path}: the {files} label files hold the values {labelled[:20]}{' ...' if len(labelled) > 20 else ''}, "
        f"so read as class indices they would make {max(labelled) + 1} classes, {len(gaps)} of them without a "
        f"single pixel ({shown}): a greyscale encoding, not indices. Remedy: {remedy}"
    )


def colour_message(path: Path, stats: MaskStats) -> str:
    """Colour masks without ``palette=``: the colours found, their share of pixels, a ``palette:`` block."""
    colours, shares = stats.colours()
    listing = ", ".join(f"{tuple(int(x) for x in c)} {100 * s:.1f}%" for c, s in zip(colours[:12], shares[:12]))
    more = f" (and {len(colours) - 12} more, rarer: antialiased edges map to ignore_index)" if len(colours) > 12 else ""
    return (
        f"{path}: RGB colour masks, but no palette= maps colours to classes. {len(colours)} colours found in "
        f"{stats.files} files: {listing}{more}. Remedy: pass palette= with one RGB colour per class, in class order "
        f"(listed here by share: reorder them into your classes, and leave out edge colours). segkit train: "
        f"{cli_set('palette', colours[:20].tolist())}; in a config, under data:\n{palette_block(colours[:20])}"
    )


def bad_value_message(path: Path, found: list[int], rgb: bool, enc: MaskEncoding) -> str:
    """A file holding values (or colours) the encoding does not list."""
    if rgb:
        return f"{path}: an RGB mask among single-channel masks; pass palette= to map colours to classes"
    if enc.kind in ("values", "binary"):
        listed = enc.values
        return (
            f"{path}: label values {found[:8]} are not in the stored values {listed} (nor ignore_index "
            f"{enc.ignore_index}). Remedy: list them in mask_values, or pass unlisted='ignore' to ignore them "
            f"(segkit train: {cli_set('unlisted', 'ignore')})"
        )
    return (
        f"{path}: label values {found[:8]} are neither a class in [0, {enc.num_classes}) nor ignore_index "
        f"{enc.ignore_index}. Remedy: pass num_classes={max(found) + 1} if they are classes (segkit train: "
        f"{cli_set('num_classes', max(found) + 1)}), mask_values=[...] if the stored values are codes, or fix this file"
    )


def stray_message(strays: list[tuple[Path, int, int]], files: int, ign: int) -> str:
    """0/255 masks with a few stray values: each stray (file, value, pixels), the decision, and the remedies."""
    n = sum(c for _, _, c in strays)
    where = {p for p, _, _ in strays}
    shown = "; ".join(f"{p}: {c} pixel{'s' * (c != 1)} of value {v}" for p, v, c in strays[:10])
    more = f"; and {len(strays) - 10} more" if len(strays) > 10 else ""
    others = sorted({v for _, v, _ in strays})
    return (
        f"binary 0/255 masks with {n} stray pixel{'s' * (n != 1)} of other values in {len(where)} of {files} "
        f"files ({shown}{more}). Decided: 0 -> background (class 0), 255 -> foreground (class 1), the stray "
        f"pixels -> ignore_index {ign} (not foreground). If the values {others[:5]} are classes and 255 marks "
        f"ignored pixels, pass mask_values={[0, *others[:5]]} ({cli_set('mask_values', [0, *others[:5]])}); to "
        f"confirm this decision and silence this warning, pass mask_values=[0, 255] with unlisted='ignore' "
        f"({cli_set('mask_values', [0, 255])} {cli_set('unlisted', 'ignore')}), or fix the files"
    )


def ignore_heavy_message(enc: MaskEncoding) -> str:
    """Index masks where ``ignore_index`` holds more pixels than every class but 0: maybe it is the foreground."""
    ign, labelled = enc.ignore_index, float(enc.pixel_share[1:].sum())
    return (
        f"index masks: the value {ign} (ignore_index) holds {100 * enc.ignored_share:.2f}% of the pixels read, more "
        f"than classes 1..{enc.num_classes - 1} together ({100 * labelled:.2f}%), and all of it is ignored. If {ign} "
        f"marks a class (the foreground of 0/{ign} masks), pass mask_values=[0, {ign}] "
        f"({cli_set('mask_values', [0, ign])}) and unlisted='ignore' for the other values"
    )
