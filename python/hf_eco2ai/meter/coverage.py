"""What a meter's figures cover and what its estimates rest on, as reports state them.

Pure functions of ``EnergyMeter.info()``: the CPU estimate's inputs per channel (the TDP, where it
came from, the utilisation and its scope) and whether DRAM was measured. A report carries both in
its channels and warnings, so an estimate never reads like a measurement and a missing memory
channel is never silent. No checked watts-per-GB factor for DRAM exists to estimate it from, so
DRAM without a RAPL ``dram`` zone is said to be not measured.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from hf_eco2ai.meter.flags import SOURCE_CPU_ESTIMATE, SOURCE_RAPL

DRAM_CHANNEL_PREFIX = "dram:"


def estimate_inputs(info: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Per CPU-estimate channel: ``tdp_watts``, ``tdp_origin``, ``model``, ``utilisation_from``,
    ``utilisation_scope`` (``machine`` or ``process``) and ``process_share`` (how the share is
    taken, None in machine scope)."""
    facts_by_source = {source["name"]: source for source in info["sources"]}
    facts = facts_by_source.get(SOURCE_CPU_ESTIMATE)
    if facts is None:
        return {}
    inputs = {}
    for channel in info["channels"]:
        if channel["source"] != SOURCE_CPU_ESTIMATE:
            continue
        inputs[channel["name"]] = {
            "tdp_watts": float(facts["tdp_watts"]),
            "tdp_origin": str(facts["tdp_origin"]),
            "model": str(facts["model"]),
            "utilisation_from": str(facts["utilisation_from"]),
            "utilisation_scope": channel["scope"],
            "process_share": facts.get("process_share"),
        }
    return inputs


def dram_coverage(info: Mapping[str, Any]) -> Dict[str, Any]:
    """``measured`` (bool), ``channels`` (the DRAM channels read) and ``note``, a sentence that
    says either which channels measured DRAM or why it was not measured."""
    channels = [channel["name"] for channel in info["channels"] if channel["name"].startswith(DRAM_CHANNEL_PREFIX)]
    if channels:
        return {"measured": True, "channels": channels, "note": f"DRAM measured by RAPL: {', '.join(channels)}"}
    return {"measured": False, "channels": [], "note": dram_not_measured_note(info)}


def dram_not_measured_note(info: Optional[Mapping[str, Any]]) -> str:
    """Why DRAM is missing from the totals; ``info`` None: this process measures nothing."""
    if info is None:
        reason = "this process measures no energy"
    elif any(channel["source"] == SOURCE_RAPL for channel in info["channels"]):
        reason = "the RAPL tree has no dram zone (AMD CPUs and many servers expose none)"
    else:
        skipped = info.get("skipped_sources", {}).get(SOURCE_RAPL)
        reason = "no RAPL counters were read" + (f" ({skipped})" if skipped else "")
    return f"DRAM not measured: {reason}; the totals leave memory out"


def describe_estimate(channel: str, inputs: Mapping[str, Any]) -> str:
    """One sentence for a report: the estimate's model, TDP and origin, and its utilisation."""
    if inputs["utilisation_scope"] == "process":
        utilisation = (
            f"utilisation of the whole machine from {inputs['utilisation_from']}, then this process tree's share: "
            f"{inputs['process_share']}"
        )
    else:
        utilisation = f"utilisation of the whole machine from {inputs['utilisation_from']} (every process on it)"
    return (
        f"{channel} is estimated, not measured: {inputs['model']} with TDP {inputs['tdp_watts']:g} W "
        f"({inputs['tdp_origin']}); {utilisation}"
    )


def coverage_warnings(info: Optional[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The report warnings that state the estimate's inputs and the DRAM coverage."""
    found: List[Dict[str, Any]] = []
    if info is not None:
        for channel, inputs in estimate_inputs(info).items():
            found.append({"code": "cpu-estimated", "message": describe_estimate(channel, inputs), "channel": channel})
    dram = dram_coverage(info) if info is not None else {"measured": False, "note": dram_not_measured_note(None)}
    if not dram["measured"]:
        found.append({"code": "dram-not-measured", "message": dram["note"]})
    return found
