"""Silicon area of a design (28 nm): PEs, SRAM, dequant units, vector units, interconnect.

Pure functions of the design and the constants in
``mixpe_sys/data/energy_area.yaml``: a PE's area is the sum of its listed
components (Horowitz ISSCC 2014 figures at 45 nm, scaled by (28/45)^2), SRAM
is priced per KiB, the dequant and vector units per lane, and the
interconnect per switch port. :func:`iso_area_array` picks the array size
that brings a design to a target area.
"""

from __future__ import annotations

from dataclasses import dataclass

from .energy import constants, paper_pe, pe_figures, sram_capacity_kib
from .errors import ConfigError
from .hw.config import AcceleratorConfig, DequantPlacement, PeConfig, PeKind
from .workload.quant import NumberFormat


@dataclass(frozen=True)
class AreaBreakdown:
    """Area of a design by part (mm^2)."""

    pes_mm2: float
    sram_mm2: float
    dequant_mm2: float
    vector_mm2: float
    noc_mm2: float

    @property
    def total_mm2(self) -> float:
        """Whole design (mm^2)."""
        return self.pes_mm2 + self.sram_mm2 + self.dequant_mm2 + self.vector_mm2 + self.noc_mm2

    def to_dict(self) -> dict[str, float]:
        """``{pes, sram, dequant, vector, noc, total}`` in mm^2."""
        return {"pes": self.pes_mm2, "sram": self.sram_mm2, "dequant": self.dequant_mm2,
                "vector": self.vector_mm2, "noc": self.noc_mm2, "total": self.total_mm2}


def _components_um2(recipe: dict) -> float:
    """Area of a component list at 28 nm (um^2)."""
    c = constants()
    table = c["components_45nm"]
    um2 = float(recipe.get("extra_um2", 0.0))
    for name, count in recipe.items():
        if name == "extra_um2":
            continue
        if name not in table:
            raise ConfigError(f"unknown area component '{name}' (known: {', '.join(table)}, extra_um2)")
        um2 += count * table[name]["area_um2"]
    return um2 * c["scaling"]["area_factor"]


def pe_area_um2(pe: PeConfig) -> float:
    """Area of one PE (um^2, 28 nm); a paper PE takes the area of its closest realistic PE, a user
    PE type the components its class lists (:func:`mixpe_sys.energy.pe_figures`)."""
    if pe.kind == PeKind.PAPER_RULE:
        paper = paper_pe(pe)
        like = paper["area_like"] if paper else "bitfusion"
        scale = 1.0 if paper else (pe.max_bits / 8) ** 2
        return _components_um2(constants()["pes"][like]["area"]) * scale
    return _components_um2(pe_figures(pe)["area"])


def dequant_lane_um2(design: AcceleratorConfig) -> float:
    """Area of one dequant/conversion lane (um^2); 0 without a dequant unit."""
    d = constants()["dequant"]
    placement = design.tile.dequant.placement
    if placement is DequantPlacement.POST_GEMM:
        return _components_um2(d["post_gemm"]["area"])
    if placement is DequantPlacement.IN_LOOP:
        # the converter is built for the activations of the scheme the design is built to run
        fp = design.native_quant.activation_format is NumberFormat.FP
        return _components_um2(d["in_loop_fp" if fp else "in_loop_int"]["area"])
    return 0.0


def area_breakdown(design: AcceleratorConfig) -> AreaBreakdown:
    """Area of ``design`` by part (mm^2)."""
    c = constants()
    tile = design.tile
    pes = design.num_pes * pe_area_um2(tile.pe_array.pe) * 1e-6
    sram = sram_capacity_kib(design) * c["sram"]["area_um2_per_kib"] * 1e-6
    dequant = design.num_tiles * tile.dequant.elements_per_cycle * dequant_lane_um2(design) * 1e-6
    vector = design.num_tiles * tile.vector.lanes * _components_um2(c["vector"]["area"]) * 1e-6
    noc = 0.0
    if design.noc is not None:
        ports = design.num_tiles + 1 + (1 if design.global_buffer is not None else 0)
        width_bytes = design.noc.link_bandwidth_bytes_per_s / design.frequency_hz
        noc = ports * c["noc"]["port_area_mm2_per_128b"] * width_bytes / 128
    return AreaBreakdown(pes_mm2=pes, sram_mm2=sram, dequant_mm2=dequant, vector_mm2=vector, noc_mm2=noc)


def area_mm2(design: AcceleratorConfig) -> float:
    """Total area of ``design`` (mm^2); :func:`area_breakdown` gives the parts."""
    return area_breakdown(design).total_mm2


def iso_area_array(design: AcceleratorConfig, target_mm2: float, *, step: int = 4,
                   max_side: int = 512) -> tuple[int, int, float]:
    """The PE array (rows, cols) that brings ``design`` closest to ``target_mm2``.

    Rows and columns are multiples of ``step``, with cols between rows and
    2 x rows (the design's other parts unchanged); ties go to the squarer array.

    Returns
    -------
    (rows, cols, area_mm2)
    """
    arr = design.tile.pe_array
    best = None
    for rows in range(step, max_side + 1, step):
        for cols in range(rows, min(2 * rows, max_side) + 1, step):
            d = design.replace(tile=design.tile.replace(pe_array=arr.replace(rows=rows, cols=cols)))
            a = area_mm2(d)
            key = (abs(a - target_mm2), cols - rows)
            if best is None or key < best[0]:
                best = (key, rows, cols, a)
    _, rows, cols, a = best
    return rows, cols, a
