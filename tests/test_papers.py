"""odtlab.papers: the paper lines print, and the 256 KB paper's figures are reached."""

from __future__ import annotations

import re

import odtlab as odt

LINE = re.compile(
    r"^(?P<name>[^:]+): paper=(?P<paper>[\d.]+) ours=(?P<ours>[\d.]+) ratio=(?P<r>[\d.]+)$"
)


def test_public_api() -> None:
    assert "papers" in odt.__all__
    assert set(odt.papers.__all__) >= {"PaperComparison", "tinytl_table2", "lin2022_qas"}
    row = odt.papers.PaperComparison("x (MB)", 2, 3)
    assert row.ratio == 1.5 and row.line() == "x (MB): paper=2 ours=3.00 ratio=1.50"


def test_256kb_lines() -> None:
    rows = odt.papers.lin2022_sparse_update()
    lines = [r.line() for r in rows]
    assert len(lines) == 3 and all(LINE.match(line) for line in lines)
    by_name = {r.name.split(" ")[0]: r for r in rows}
    # Full update needs 7-9x the SRAM of the 100 KB sparse scheme in the paper.
    assert 7 <= by_name["256kb/SRAM"].ours <= 9
    # The reference's extra-memory figures, counted its way (int8 in place).
    assert abs(by_name["256kb/100KB-scheme"].ours / 100 - 1) < 0.2
    assert abs(by_name["256kb/last-12-layers"].ours / 448 - 1) < 0.1


def test_qas_lines() -> None:
    rows = odt.papers.lin2022_qas()
    assert all(LINE.match(r.line()) for r in rows)
    per_channel, per_tensor = (r.ours for r in rows)
    # QAS brings the int8 ratio back to the fp32 one: within 15 % (per-channel scales
    # weight each channel's share by 1/s_c) and within 2 % with one scale per tensor.
    assert abs(per_channel - 1) < 0.15 and abs(per_tensor - 1) < 0.02
    # Reports passed in are used as they are, not computed again.
    again = odt.papers.lin2022_qas(*(_report(r) for r in rows))
    assert [r.ours for r in again] == [per_channel, per_tensor]


def _report(row: odt.papers.PaperComparison) -> object:
    """A stand-in for a QASReport: only its median is read."""
    return type("Report", (), {"median_with_qas": row.ours})()


def test_tinytl_lines() -> None:
    rows = odt.papers.tinytl_table2() + odt.papers.tinytl_figure1()
    assert len(rows) == 9 and all(LINE.match(r.line()) for r in rows)
    by_name = {r.name: r for r in rows}
    # The shape of Table 2: the last layer alone is the cheapest, full fine-tuning the dearest.
    ours = {r.name.split(" ")[0]: r.ours for r in rows if " r224 " in r.name}
    assert min(ours, key=ours.get) == "tinytl/FT-Last"
    assert max(ours, key=ours.get) == "tinytl/FT-Full"
    # Figure 1's two ratios reproduce within 10 %.
    for name in ("params", "activations"):
        row = by_name[f"tinytl/fig1 {name} resnet50-over-mbv2-1.4 b16 (x)"]
        assert abs(row.ratio - 1) < 0.1
