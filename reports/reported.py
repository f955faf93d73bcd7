"""Numbers published by others, shown beside ours as labelled "reported" rows (``--reported``).

Only numbers that the seed talk itself shows (shared/specs/methods.md section 7.1b) are here;
nothing is recomputed or inferred. Each table records what the source says about its data,
split and protocol so that a caption can warn when ours differ. The WESPE per-phone DPED table
has no numbers in the seed, so its layout carries our rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["REPORTED", "ReportedTable"]


@dataclass(frozen=True)
class ReportedTable:
    """Published rows of one table.

    Attributes:
        source: where the numbers are printed (in full, for captions).
        short: the same, short enough for a row label ("reported in <short>").
        dataset: the dataset family the numbers are on (``fivek``, ``dped``).
        split: the split as the source states it, or None when it does not say.
        protocol: the resolution protocol as the source states it, or None when it does not say.
        rows: method name -> {column id -> value as printed}; ids are ``PSNR_d``-style where the
            source names the protocol, else the bare metric name (``PSNR``). Values stay text so
            that the published precision is kept (``22.10``, ``0.928``).
    """

    source: str
    short: str
    dataset: str
    split: str | None
    protocol: str | None
    rows: dict[str, dict[str, str]] = field(default_factory=dict)


_T1 = ("PSNR_d", "PSNR_f", "SSIM_d", "SSIM_f")
_T2 = ("PSNR_100", "SSIM_100")


def _rows(columns: tuple[str, ...], values: dict[str, tuple[str, ...]]) -> dict[str, dict[str, str]]:
    return {name: dict(zip(columns, numbers, strict=True)) for name, numbers in values.items()}


REPORTED: dict[str, ReportedTable] = {
    "muspe_table1": ReportedTable(
        source="the DACAL/MUSPE seed talk, Table 1 (Huang et al., arXiv 1910.10455)",
        short="seed Table 1",
        dataset="fivek",
        split=None,  # the talk does not name the FiveK split (methods.md 7.3 guesses DPE's)
        protocol="d = long side 512, f = full resolution",
        rows=_rows(_T1, {
            "WB": ("18.86", "19.09", "0.928", "0.920"),
            "DR": ("21.64", "21.52", "0.936", "0.922"),
            "DPED": ("21.05", "20.86", "0.922", "0.916"),
            "DPE": ("22.10", "21.65", "0.947", "0.894"),
            "MUSPE_l1": ("22.73", "22.43", "0.958", "0.948"),
            "MUSPE_l2": ("22.99", "22.69", "0.942", "0.942"),
            "MUSPE_l3": ("23.01", "23.02", "0.949", "0.940"),
            "MUSPE_l": ("23.52", "23.56", "0.959", "0.954"),
            "MUSPE_h": ("24.15", "24.07", "0.962", "0.956"),
        }),
    ),
    "muspe_table2": ReportedTable(
        source="the DACAL/MUSPE seed talk, Table 2 (Huang et al., arXiv 1910.10455)",
        short="seed Table 2",
        dataset="dped",
        split=None,  # the phone(s) behind the single column are not stated
        protocol="100 = DPED 100×100 test patches",
        rows=_rows(_T2, {
            "WESPE": ("17.45", "0.854"),
            "DPE": ("18.53", "0.861"),
            "MUSPE_l": ("19.62", "0.868"),
            "MUSPE_l+f": ("20.01", "0.869"),
            "MUSPE_l+f+d": ("20.43", "0.872"),
            "MUSPE_h": ("20.90", "0.874"),
        }),
    ),
    "upe_fivek": ReportedTable(
        source="the UPE FiveK table shown in the seed talk (Wang et al., CVPR 2019)",
        short="seed UPE table",
        dataset="fivek",
        split="upe",  # DeepUPE: train a0001-a4500, test a4501-a5000
        protocol=None,  # the talk does not state the resolution
        rows=_rows(("PSNR", "SSIM"), {
            "HDRNet": ("21.96", "0.866"),
            "DPE": ("22.15", "0.850"),
            "White-Box": ("18.57", "0.701"),
            "Distort-and-Recover": ("20.97", "0.841"),
            "UPE": ("23.04", "0.893"),
        }),
    ),
}
