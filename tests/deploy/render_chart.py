"""Render the Helm chart with Helm's own engine (helm-python-sdk binds Helm's Go SDK, no helm
binary) and validate every rendered object with kubernetes-validate in strict mode.

usage: render_chart.py CHART_DIR NAME=VALUES_FILE... (VALUES_FILE may be "-" for defaults)
Prints one JSON object: {name: {"objects": [...], "errors": [...]}}; exits 1 on any error.
"""
import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml

# Kubernetes versions validated against: the oldest the chart supports and the newest known.
VERSIONS = ["1.30.0", "1.37.0"]
# Custom resources kubernetes-validate has no schema for: checked by hand below.
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def check_service_monitor(obj, objects):
    errs = []
    spec = obj.get("spec", {})
    allowed = {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels"}
    errs += [f"ServiceMonitor: unknown spec field {k}" for k in spec if k not in allowed]
    ports = {p.get("name") for o in objects if o["kind"] == "Service" for p in o["spec"].get("ports", [])}
    labels = [o["metadata"].get("labels", {}) for o in objects if o["kind"] == "Service"]
    sel = spec.get("selector", {}).get("matchLabels", {})
    if not any(all(l.get(k) == v for k, v in sel.items()) for l in labels):
        errs.append("ServiceMonitor selector matches no Service")
    for ep in spec.get("endpoints", []):
        if ep.get("port") not in ports:
            errs.append(f"ServiceMonitor endpoint port {ep.get('port')} is not a Service port")
    return errs


def main():
    chart_dir, sets = sys.argv[1], sys.argv[2:]
    out, failed = {}, False
    with helm.Chart.load(chart_dir) as chart:
        for s in sets:
            name, path = s.split("=", 1)
            values = {} if path == "-" else (yaml.safe_load(open(path)) or {})
            errors, objects = [], []
            try:
                rendered = chart.render(values, name="tprobe", namespace="tprobe-system", is_install=True)
            except Exception as e:  # a template `fail` or a syntax error
                out[name] = {"objects": [], "errors": [f"render: {e}"]}
                failed = True
                continue
            for tpl, text in sorted(rendered.items()):
                if not tpl.endswith((".yaml", ".yml")):
                    continue
                for doc in yaml.safe_load_all(text):
                    if doc:
                        doc["__template"] = tpl
                        objects.append(doc)
            for obj in objects:
                tpl = obj.pop("__template")
                if (obj.get("apiVersion"), obj.get("kind")) in CRDS:
                    errors += check_service_monitor(obj, objects)
                    continue
                for v in VERSIONS:
                    try:
                        kubernetes_validate.validate(obj, v, strict=True)
                    except Exception as e:
                        errors.append(f"{tpl} {obj.get('kind')} (k8s {v}): {str(e).splitlines()[0]}")
            out[name] = {"objects": objects, "errors": errors}
            failed |= bool(errors)
    json.dump(out, sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
