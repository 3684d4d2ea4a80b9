"""`edgekit devices`: what this machine is, what it can run, what each board would pick."""

from __future__ import annotations

import click

from ._ui import results, table, write_json


@click.command("devices")
@click.option("--bundle", default=None, help="Also show which artifact every board would run.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the facts as JSON to this file.")
def devices(bundle: str | None, json_path: str | None) -> None:
    """Detect this board, its runtimes, providers and devices."""
    from edgekit.devices.detect import detect_board, gather_facts
    from edgekit.devices.profiles import profiles

    from ..errors import EdgekitError

    facts = gather_facts()
    try:
        found = detect_board(facts)
        board, reason = found.profile.name, found.reason
    except EdgekitError as exc:
        board, reason = None, exc.message
    results.print(table("this machine", ["fact", "value"], [
        ("board profile", f"{board} ({reason})"),
        ("cpu", f"{facts.cpu_model} ({facts.arch}, {facts.cores} cores)"),
        ("device tree", facts.device_tree_model),
        ("L4T release", facts.tegra_release),
        ("runtimes", ", ".join(f"{k} {v}" for k, v in facts.runtimes.items()) or "none"),
        ("onnxruntime providers", ", ".join(facts.ort_providers) or "-"),
        ("OpenVINO devices", ", ".join(facts.openvino_devices) or "-"),
        ("TensorRT", facts.tensorrt_version),
    ]))
    data = {"board": board, "reason": reason, "facts": facts.to_dict(), "boards": {}}
    rows = []
    for name, profile in profiles().items():
        data["boards"][name] = {"title": profile.title, "family": profile.family,
                                "prefer": [f"{f}/{p}" for f, p in profile.prefer]}
        rows.append((name, profile.title, profile.family,
                     " > ".join(f"{f}/{p}" for f, p in profile.prefer)))
    results.print(table("board profiles", ["board", "title", "family", "prefers"], rows))
    if bundle:
        data["bundle"] = _choices(bundle, facts)
        results.print(table(f"what each board runs from {bundle}",
                            ["board", "artifact", "backend", "note"],
                            [(k, v.get("artifact"), v.get("backend"), v.get("error"))
                             for k, v in data["bundle"].items()]))
    write_json(json_path, data)


def _choices(model: str, facts) -> dict[str, dict[str, str]]:
    """Which artifact each board profile's runner would pick (nothing is loaded)."""
    from dataclasses import replace

    from edgekit.devices.profiles import profiles
    from edgekit.devices.runners import Request, make_plan, open_model

    from ..errors import EdgekitError

    bundle = open_model(model)
    out = {}
    for name, profile in profiles().items():
        # Judge each board on its own: as if every runtime it lists were installed.
        board_facts = replace(facts, runtimes={**facts.runtimes,
                                               **{r: "?" for r in profile.runtimes}},
                              openvino_devices=tuple({*facts.openvino_devices,
                                                      *(a.upper() for a in profile.accelerators)}))
        try:
            plan = make_plan(bundle, profile, Request(), board_facts)
            out[name] = {"artifact": plan.artifact.key, "backend": plan.backend}
        except EdgekitError as exc:
            out[name] = {"error": exc.message}
    return out
