"""How label images encode classes (index, 0/255 binary, palette, RGB colours, 16-bit, lossy), decided up front."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.label_tables import LabelTable, rgb_to_index
from segkit.datasets.mask_messages import (
    bad_value_message,
    cli_set,
    colour_message,
    gap_message,
    ignore_heavy_message,
    odd_mode_message,
    stray_message,
)
from segkit.datasets.mask_stats import (
    MaskHeader,
    MaskStats,
    count_masks,
    is_lossy,
    mask_header,
)
from segkit.datasets.subsample import evenly_spaced

__all__ = ["KINDS", "MaskEncoding", "MaskEncodingError", "MaskEncodingWarning", "detect_mask_encoding"]

KINDS = ("index", "binary", "palette", "rgb", "index16", "values", "snapped")
_UNLISTED = ("error", "ignore", "nearest")


class MaskEncodingError(BadSampleError):
    """The masks' encoding cannot be used as they are; the message names a file, the reason and the remedy.

    A ``ValueError`` (through ``BadSampleError``), so ``except ValueError`` and ``on_bad_sample`` handling both see it.
    """


class MaskEncodingWarning(UserWarning):
    """A decision made on an assumption the user should check (e.g. stray values in 0/255 masks -> ignore_index)."""


@dataclass
class MaskEncoding:
    """The decided encoding of a set of label images, and how to map one to class indices.

    Attributes:
        kind: one of ``KINDS``: "index" (values are classes ``0..K-1``, plus ``ignore_index``), "binary" (0/255
            stored, 255 -> class 1), "palette" (palette-mode PNGs, indices kept), "rgb" (colour masks mapped by
            ``palette``; other colours -> ``ignore_index``), "index16" (16-bit PNGs holding indices), "values"
            (``mask_values`` listed: value ``values[k]`` is class ``k``), "snapped" (lossy files: each pixel goes
            to the nearest listed value or colour).
        values: the stored values in class order (None where values are the classes themselves).
        num_classes: the number of classes ``K``.
        ignore_index: the class index of ignored pixels (a stored ``ignore_index`` that is not listed stays ignored).
        pixel_share: ``(K,)`` fraction of the pixels read that belong to each class.
        ignored_share: fraction of the pixels read that are ignored.
        files_read: label files whose values were read to decide.
        files_total: label files in the set.
        colours: ``(K, 3)`` uint8 colours of kind "rgb" (and "snapped" colour masks), else None.
        grey_rgb: greyscale masks saved as RGB: channel 0 is used (the channels are checked to be equal).
        unlisted: what happens to a stored value that is not listed: "error", "ignore" or "nearest".
        notes: short remarks printed with the summary (e.g. classes without pixels).
        bad_files: ``(path, reason)`` of files read that cannot be decoded this way (left for loading to report).
        warnings: what the decision assumed, each named (also raised as ``MaskEncodingWarning`` once).
    """

    kind: str
    values: list[int] | None
    num_classes: int
    ignore_index: int = 255
    pixel_share: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ignored_share: float = 0.0
    files_read: int = 0
    files_total: int = 0
    colours: np.ndarray | None = None
    grey_rgb: bool = False
    unlisted: str = "error"
    notes: list[str] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"MaskEncoding: kind must be one of {KINDS}, got {self.kind!r}")
        if self.unlisted not in _UNLISTED:
            raise ValueError(f"MaskEncoding: unlisted must be one of {_UNLISTED}, got {self.unlisted!r}")
        if not 0 <= self.ignore_index < 256 and self.kind != "rgb":
            raise ValueError(f"MaskEncoding: ignore_index {self.ignore_index} must fit in uint8 (0..255)")
        self._table = self._build_table()
        self._wide: tuple[np.ndarray, np.ndarray] | None = None

    def _mapping(self, top: int) -> dict[int, int] | None:
        """Stored value -> class for stored values ``0..top``; None is the identity on ``[0, K)``."""
        if self.kind == "binary":
            mapping = {0: 0, 255: 1}
        elif self.values is not None:
            mapping = {int(v): k for k, v in enumerate(self.values)}
        else:
            mapping = {k: k for k in range(self.num_classes)}
            if self.unlisted == "error":
                return None
        if self.unlisted == "error":
            return mapping
        listed = np.asarray(sorted(mapping), np.int64)
        for v in range(top + 1):
            if v in mapping or v == self.ignore_index:
                continue
            if self.unlisted == "ignore":
                mapping[v] = self.ignore_index
            else:  # nearest listed value; ties go to the lower one
                mapping[v] = mapping[int(listed[np.abs(listed - v).argmin()])]
        return mapping

    def _build_table(self) -> LabelTable | None:
        if self.kind == "rgb" or (self.values is not None and max(self.values) > 255):
            return None
        return LabelTable(self.num_classes, self._mapping(255), ignore_index=self.ignore_index)

    def decode(self, mask: np.ndarray, path: str | Path) -> np.ndarray:
        """Map one stored label image to class indices.

        Args:
            mask: the stored values as read by ``read_mask``: ``(H, W)`` uint8/uint16, or ``(H, W, 3)`` RGB.
            path: the file, named in errors.

        Returns:
            ``(H, W)`` uint8 class indices in ``[0, num_classes)`` or ``ignore_index``.

        Raises:
            BadSampleError: a value (or colour) this encoding does not list, or the wrong kind of image.
        """
        if self.colours is not None:
            if mask.ndim != 3:
                raise BadSampleError(f"{path}: palette= given but the mask is not an RGB image (shape {mask.shape})")
            if self.kind == "snapped":
                return _nearest_colour(mask, self.colours)
            return rgb_to_index(mask, self.colours, range(len(self.colours)), self.ignore_index)
        if mask.ndim == 3:
            if self.grey_rgb:
                mask = _one_channel(mask, path)
            elif self.kind == "snapped":
                mask = cv2.cvtColor(np.ascontiguousarray(mask), cv2.COLOR_RGB2GRAY)
            else:
                raise BadSampleError(f"{path}: an RGB mask; pass palette= to map colours to classes")
        if self._table is not None:
            return self._table(mask, path)
        return self._decode_wide(mask, path)

    def _decode_wide(self, mask: np.ndarray, path: str | Path) -> np.ndarray:
        """Listed values above 255 (16-bit masks): a 65536-entry table."""
        if self._wide is None:
            lut = np.full(65536, self.ignore_index, np.uint8)
            valid = np.zeros(65536, bool)
            for v, k in (self._mapping(65535) or {}).items():
                lut[v], valid[v] = k, True
            valid[self.ignore_index] = True
            self._wide = (lut, valid)
        lut, valid = self._wide
        if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
            raise BadSampleError(f"{path}: expected an 8- or 16-bit single-channel label image, got {mask.dtype}")
        ok = valid[mask]
        if not ok.all():
            bad = np.unique(mask[~ok])[:8].tolist()
            raise BadSampleError(
                f"{path}: label values {bad} are not in mask_values={self.values} (nor ignore_index "
                f"{self.ignore_index}); list them in mask_values, or pass unlisted='ignore'"
            )
        return lut[mask]

    def describe(self) -> str:
        """The one-line decision, e.g. ``binary masks stored as 0/255: 2 classes, 255 -> class 1``."""
        k = self.num_classes
        grey = " (greyscale saved as RGB: channel 0 used)" if self.grey_rgb else ""
        if self.kind == "binary":
            text = f"binary masks stored as 0/255: {k} classes, 255 -> class 1"
        elif self.kind == "index":
            text = f"index masks (values 0..{k - 1}, {self.ignore_index} = ignore_index): {k} classes"
        elif self.kind == "palette":
            text = f"palette PNG masks, indices kept (0..{k - 1}, {self.ignore_index} = ignore_index): {k} classes"
        elif self.kind == "index16":
            text = f"16-bit PNG masks holding indices (0..{k - 1}, {self.ignore_index} = ignore_index): {k} classes"
        elif self.kind == "rgb":
            text = f"RGB colour masks mapped by palette=: {k} classes, other colours -> ignore_index"
        elif self.kind == "values":
            pairs = ", ".join(f"{v}->{i}" for i, v in enumerate(self.values or ()))
            text = f"masks mapped by mask_values (stored value -> class: {pairs}): {k} classes"
        else:
            listed = "palette= colour" if self.colours is not None else f"value of mask_values={self.values}"
            text = f"lossy (JPEG) masks: every pixel snapped to the nearest {listed}: {k} classes"
        if self.unlisted != "error" and self.kind not in ("rgb", "snapped"):
            text += f"; values not listed -> {'ignore_index' if self.unlisted == 'ignore' else 'nearest listed'}"
        return text + grey

    def summary(self, class_names: Sequence[str] | None = None, name: str = "masks") -> str:
        """One short block: the decision, the files read and the share of pixels per class.

        Args:
            class_names: names shown next to the shares (default ``class_k``).
            name: the prefix of the first line (e.g. the dataset's name).

        Returns:
            A few lines, plus one per class when there are at most 20 classes.
        """
        lines = [f"{name}: {self.describe()}"]
        lines.append(f"  read {self.files_read} of {self.files_total} label files; share of pixels per class:")
        shares = self.pixel_share if len(self.pixel_share) == self.num_classes else np.zeros(self.num_classes)
        names = list(class_names) if class_names is not None else [f"class_{k}" for k in range(self.num_classes)]
        if self.num_classes <= 20:
            width = max(len(n) for n in names) if names else 7
            for k, (n, s) in enumerate(zip(names, shares)):
                raw = f"  (stored {self.values[k]})" if self.values is not None else ""
                lines.append(f"  {k:>3} {n:<{width}} {100 * s:6.2f}%{raw}")
        else:
            top = np.argsort(-shares)[:5]
            lines.append("  most frequent: " + ", ".join(f"{names[k]} {100 * shares[k]:.1f}%" for k in top))
        lines.append(f"  ignored (ignore_index {self.ignore_index}): {100 * self.ignored_share:.2f}% of pixels")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _one_channel(mask: np.ndarray, path: str | Path) -> np.ndarray:
    """Channel 0 of a greyscale mask saved as RGB, after checking that the three channels are equal."""
    first = mask[..., 0]
    if not (np.array_equal(first, mask[..., 1]) and np.array_equal(first, mask[..., 2])):
        raise BadSampleError(
            f"{path}: a colour mask among greyscale masks saved as RGB (its channels differ); "
            "save it as greyscale like the others, or pass palette= if the masks are colour-coded"
        )
    return np.ascontiguousarray(first)


def _nearest_colour(rgb: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour of each pixel (squared RGB distance), ``(H, W)`` uint8."""
    diff = rgb[..., None, :3].astype(np.int32) - colours[None, None].astype(np.int32)
    return np.einsum("hwkc,hwkc->hwk", diff, diff).argmin(-1).astype(np.uint8)


def detect_mask_encoding(
    mask_paths: Sequence[str | Path],
    *,
    num_classes: int | None = None,
    mask_values: Sequence[int] | None = None,
    palette: Sequence[Sequence[int]] | np.ndarray | None = None,
    ignore_index: int = 255,
    sample: int = 64,
    unlisted: str = "error",
    bad_files: str = "raise",
) -> MaskEncoding:
    """Decide how ``mask_paths`` encode classes, from their headers and values; refuse what would train wrong.

    A sample of ``sample`` evenly spaced files decides the kind; every file is read only where needed (to infer
    ``num_classes`` of index masks, or to confirm that a sample holding one class is really degenerate), with
    a progress bar on stderr when that pass takes over a second.

    Args:
        mask_paths: the label files (missing files are left out).
        num_classes: the number of classes, or None to infer it.
        mask_values: stored values in class order (``[0, 255]``: 0 is class 0, 255 is class 1); required for
            lossy (JPEG) masks, whose pixels are then snapped to the nearest listed value.
        palette: ``(K, 3)`` RGB colours of colour-coded masks (colour ``k`` is class ``k``).
        ignore_index: the stored value (and class index) of ignored pixels.
        sample: how many files decide the kind.
        unlisted: a stored value not listed in ``mask_values``: "error", "ignore" (-> ``ignore_index``) or
            "nearest" (snapped to the nearest listed value).
        bad_files: a file read here that this encoding cannot decode: "raise" now, or "keep" (recorded in
            ``bad_files`` and reported when the sample is loaded).

    Returns:
        The ``MaskEncoding``.

    Raises:
        MaskEncodingError: an encoding that would train wrong (lossy masks without ``mask_values``, colour masks
            without ``palette``, gapped grey values, fewer than 2 classes, every pixel ignored, a label >=
            ``num_classes``); the message names a file, the reason and the remedy.
    """
    if unlisted not in _UNLISTED:
        raise ValueError(f"detect_mask_encoding: unlisted must be one of {_UNLISTED}, got {unlisted!r}")
    if bad_files not in ("raise", "keep"):
        raise ValueError(f"detect_mask_encoding: bad_files must be 'raise' or 'keep', got {bad_files!r}")
    paths = [Path(p) for p in mask_paths if Path(p).is_file()]
    if not paths:
        raise MaskEncodingError("masks: no label file to read; check the mask folder and file names")
    colours = None if palette is None else np.asarray(palette, np.uint8).reshape(-1, 3)
    values = None if mask_values is None else [int(v) for v in mask_values]
    if values is not None:
        _check_values(values, num_classes, ignore_index)
    found = _sample_headers(paths, sample)
    if found.lossy and values is None and colours is None:
        _refuse_lossy(found.first, found.lossy)
    rules = _EncodingRules(paths, num_classes, values, colours, ignore_index, unlisted, found.first, found.lossy)
    enc = rules.decide(found.group, found.modes, count_masks(found.kept))
    enc.files_total = len(paths)
    for text in enc.warnings:
        warnings.warn(f"{found.first.parent}: {text}", MaskEncodingWarning, stacklevel=2)
    _record_bad_files(enc, found, rules.bad)
    if enc.bad_files and bad_files == "raise":
        raise MaskEncodingError(enc.bad_files[0][1])
    if enc.bad_files:
        enc.notes.append(f"{len(enc.bad_files)} label files read do not decode this way; they fail when loaded")
    return enc


@dataclass
class _Sample:
    """The headers of the sampled label files and what they decide: the majority group (grey or RGB) and its
    modes, the files of that group to count, the file named in messages, and whether the masks are lossy."""

    paths: list[Path]
    chosen: list[int]
    headers: dict[int, MaskHeader | None]
    group: str
    modes: set[str]
    kept: list[Path]
    first: Path
    lossy: str | None


def _sample_headers(paths: list[Path], sample: int) -> _Sample:
    """Read the headers of ``sample`` evenly spaced files (no pixel decoded) and pick the majority group."""
    chosen = evenly_spaced(len(paths), sample)
    headers = {i: mask_header(paths[i]) for i in chosen}
    readable = {i: h for i, h in headers.items() if h is not None}
    if not readable:
        raise MaskEncodingError(f"{paths[chosen[0]]}: cannot read any of the {len(chosen)} label files sampled")
    groups = [h.group for h in readable.values()]
    group = max(set(groups), key=groups.count)
    in_group = [i for i, h in readable.items() if h.group == group]
    lossy_files = [(paths[i], kind) for i in readable if (kind := is_lossy(paths[i]))]
    first = lossy_files[0][0] if lossy_files else paths[in_group[0]]
    modes = {readable[i].mode for i in in_group}
    lossy = lossy_files[0][1] if lossy_files else None
    return _Sample(paths, chosen, headers, group, modes, [paths[i] for i in in_group], first, lossy)


def _refuse_lossy(first: Path, lossy: str) -> None:
    """Lossy masks without ``mask_values``/``palette``: the error, with the remedy for grey or colour masks."""
    stats = count_masks([first], progress=False)
    colour = bool(stats.per_file) and stats.per_file[0][3]  # colours, not grey saved as RGB
    remedy = (
        "pass palette=[[r, g, b], ...] (the colours you drew, in class order; segkit train: "
        f"{cli_set('palette', [[0, 0, 0], [255, 0, 0]])})"
        if colour
        else "pass mask_values=[...] (the values you drew, in class order, e.g. [0, 255]; segkit train: "
        f"{cli_set('mask_values', [0, 255])})"
    )
    raise MaskEncodingError(
        f"{first}: a {lossy} mask: lossy compression invents values near every edge "
        f"({stats.distinct()} distinct values in this file), so labels cannot be read exactly. Remedy: save "
        f"the masks as PNG, or {remedy} to snap every pixel to the nearest listed one"
    )


def _record_bad_files(enc: MaskEncoding, found: _Sample, undecodable: list[tuple[str, str]]) -> None:
    """Unreadable sampled files, files of another mode, and files with values this encoding cannot decode."""
    for i in found.chosen:
        header = found.headers[i]
        if header is None:
            enc.bad_files.append((str(found.paths[i]), f"{found.paths[i]}: corrupt or unsupported label file"))
        elif header.group != found.group:
            enc.bad_files.append((str(found.paths[i]), odd_mode_message(found.paths[i], header.mode, found.group)))
    seen = {p for p, _ in enc.bad_files}
    enc.bad_files.extend(item for item in undecodable if item[0] not in seen)


class _EncodingRules:
    """The rules that turn counted mask values into a ``MaskEncoding``: colour masks (``decide``), grey masks
    (``grey``), then the checks every encoding passes (``checked``). ``bad`` collects the files whose values do
    not decode under the chosen encoding."""

    def __init__(
        self,
        paths: list[Path],
        num_classes: int | None,
        values: list[int] | None,
        colours: np.ndarray | None,
        ignore_index: int,
        unlisted: str,
        first: Path,
        lossy: str | None,
    ) -> None:
        self.paths, self.num_classes, self.values, self.colours = paths, num_classes, values, colours
        self.ignore_index, self.unlisted, self.first, self.lossy = ignore_index, unlisted, first, lossy
        self.bad: list[tuple[str, str]] = []

    def decide(self, group: str, modes: set[str], stats: MaskStats) -> MaskEncoding:
        if group == "rgb" and (self.colours is not None or not stats.grey_rgb):
            if self.colours is not None:
                if self.num_classes is not None and self.num_classes != len(self.colours):
                    raise MaskEncodingError(
                        f"{self.first}: palette= has {len(self.colours)} colours but num_classes={self.num_classes}; "
                        "give one colour per class (or leave num_classes out)"
                    )
                kind = "snapped" if self.lossy else "rgb"
                enc = MaskEncoding(kind, None, len(self.colours), self.ignore_index, colours=self.colours)
                return self.checked(enc, stats)
            if self.values is None or not self.lossy:
                raise MaskEncodingError(colour_message(self.first, stats))
        enc = self.grey(stats, modes, grey_rgb=group == "rgb" and stats.grey_rgb)
        if self.colours is not None:
            enc.notes.append("the masks hold indices: palette= only gives the display colours")
        return enc

    def grey(self, stats: MaskStats, modes: set[str], grey_rgb: bool) -> MaskEncoding:
        """Grey (or grey-as-RGB) masks: listed values, binary 0/255 (strays included), or index/palette masks."""
        present = stats.present()
        ign = self.ignore_index
        if self.values is not None:
            kind = "snapped" if self.lossy else "values"
            unlisted = "nearest" if self.lossy else self.unlisted
            enc = MaskEncoding(kind, self.values, len(self.values), ign, grey_rgb=grey_rgb, unlisted=unlisted)
            return self.checked(enc, stats)
        labelled = [v for v in present if v != ign]
        if set(present) <= {0, 255} and 255 in present and 0 in present and self.num_classes in (None, 2):
            enc = MaskEncoding("binary", [0, 255], 2, ign, grey_rgb=grey_rgb, unlisted=self.unlisted)
            return self.checked(enc, stats)
        strays = stats.near_binary(ign) if self.num_classes in (None, 2) else []
        if strays and stats.files < len(self.paths):  # name every stray file, not only the sampled ones
            stats = count_masks(self.paths, progress=True)
            strays = stats.near_binary(ign)
        if strays:  # never "index 0..1, 255 = ignore": that would ignore every foreground pixel
            enc = MaskEncoding("binary", [0, 255], 2, ign, grey_rgb=grey_rgb, unlisted="ignore")
            enc.warnings.append(stray_message(strays, stats.files, ign))
            n = sum(c for _, _, c in strays)
            enc.notes.append(
                f"{n} stray pixel(s) in {len({p for p, _, _ in strays})} file(s) -> ignore_index (see warning)"
            )
            return self.checked(enc, stats)
        if not labelled:
            raise MaskEncodingError(
                f"{self.first}: every pixel of the {stats.files} label files read is ignore_index {ign}: nothing "
                f"to learn. Remedy: if {ign} marks a class (e.g. foreground of 0/{ign} masks), pass "
                f"mask_values=[0, {ign}] ({cli_set('mask_values', [0, ign])}); otherwise the masks are empty"
            )
        kind = "palette" if modes == {"P"} else "index16" if modes & {"I;16", "I", "I;16B"} else "index"
        k = self.num_classes or (len(self.colours) if self.colours is not None else None)
        if k is None:
            if stats.files < len(self.paths):
                stats = count_masks(self.paths, progress=True)
                present = stats.present()
                labelled = [v for v in present if v != ign]
            k = max(labelled) + 1
            if k < 2:
                raise MaskEncodingError(
                    f"{self.first}: the {stats.files} label files hold only the value 0"
                    f"{f' and ignore_index {ign}' if ign in present else ''}: one class, nothing to learn. Remedy: "
                    "check the masks are not blank (all background); binary masks need 0 and a foreground value"
                )
            gaps = sorted(set(range(k)) - set(labelled))
            if gaps and kind != "palette":
                raise MaskEncodingError(gap_message(self.first, labelled, gaps, ign, ign in present, stats.files))
            if k > 255 or k > ign:
                raise MaskEncodingError(
                    f"{self.first}: label values up to {k - 1} do not fit below ignore_index {ign} (class indices "
                    f"are uint8). Remedy: pass mask_values=[...] listing the stored values in class order"
                )
        enc = MaskEncoding(kind, None, k, ign, grey_rgb=grey_rgb, unlisted=self.unlisted)
        return self.checked(enc, stats)

    def checked(self, enc: MaskEncoding, stats: MaskStats) -> MaskEncoding:
        """The checks every encoding passes: at least 2 classes, something decodable and not all ignored, 2 classes
        present (over every file when the sample holds one), and the shares per class and notes."""
        if enc.num_classes < 2:
            raise MaskEncodingError(
                f"{self.first}: num_classes={enc.num_classes}: a model needs at least 2 classes. Remedy: give "
                "every class present (background included), e.g. mask_values=[0, 255] for binary masks "
                f"({cli_set('mask_values', [0, 255])})"
            )
        self._shares(enc, stats)
        if np.count_nonzero(enc.pixel_share) < 2 and stats.files < len(self.paths):
            stats = count_masks(self.paths, progress=True)  # one class in the sample: is it so in every file?
            self._shares(enc, stats)
        if enc.ignored_share == 1.0:
            raise MaskEncodingError(
                f"{self.first}: every pixel of the {stats.files} label files read maps to ignore_index "
                f"{enc.ignore_index}: nothing to learn. Remedy: check palette=/mask_values= against the stored values"
            )
        classes = np.flatnonzero(enc.pixel_share > 0)
        if len(classes) < 2:
            hint = ""
            if enc.ignored_share > 0 and enc.kind not in ("binary", "values"):
                hint = (
                    f"; {100 * enc.ignored_share:.1f}% of the pixels are {enc.ignore_index} (ignore_index): if "
                    f"that value marks a class, pass mask_values=[0, {enc.ignore_index}] "
                    f"({cli_set('mask_values', [0, enc.ignore_index])})"
                )
            raise MaskEncodingError(
                f"{self.first}: every labelled pixel of the {stats.files} label files is class {int(classes[0])}: "
                f"a model would learn a constant. Remedy: check the masks are not blank{hint}"
            )
        if enc.kind in ("index", "palette", "index16") and enc.ignored_share > enc.pixel_share[1:].sum():
            enc.warnings.append(ignore_heavy_message(enc))  # "ignore everything that mattered" is never silent
        empty = np.flatnonzero(enc.pixel_share == 0)
        if len(empty):
            enc.notes.append(f"classes without pixels in the files read: {empty[:10].tolist()}")
        return enc

    def _shares(self, enc: MaskEncoding, stats: MaskStats) -> None:
        """Fill ``enc``'s pixel shares per class and ignored from ``stats``; note the files that do not decode."""
        counts, undecodable = stats.class_counts(enc)
        self.bad = list(stats.failed)
        for path, found, rgb in undecodable:
            self.bad.append((str(path), bad_value_message(path, found, rgb, enc)))
        total = counts.sum()
        if total == 0:
            raise MaskEncodingError(f"{self.first}: no pixel of the label files read could be decoded")
        enc.pixel_share = counts[: enc.num_classes] / total
        enc.ignored_share = float(counts[enc.num_classes] / total)
        enc.files_read = stats.files


def _check_values(values: list[int], num_classes: int | None, ignore_index: int) -> None:
    if len(set(values)) != len(values):
        raise MaskEncodingError(f"mask_values={values}: a value is listed twice; list each stored value once")
    if min(values) < 0 or max(values) > 65535:
        raise MaskEncodingError(f"mask_values={values}: stored values must be in 0..65535")
    if num_classes is not None and num_classes != len(values):
        raise MaskEncodingError(
            f"mask_values={values} lists {len(values)} classes but num_classes={num_classes}; list one stored "
            "value per class (or leave num_classes out)"
        )
    if len(values) > ignore_index:
        raise MaskEncodingError(
            f"mask_values lists {len(values)} classes, which do not fit below ignore_index {ignore_index}"
        )
