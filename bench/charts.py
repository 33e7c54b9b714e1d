"""Draw the benchmark charts: python3 bench/charts.py CHARTS_JSON OUT_DIR

CHARTS_JSON is what `bench/cmd/report -charts-data` writes; OUT_DIR receives the PNGs that
docs/benchmarks.md links. bench/run.sh runs this in a venv with matplotlib.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FLOOR, AUTHZ, PEER, OTHER = "#9e9e9e", "#1f77b4", "#ff7f0e", "#bdbdbd"


def color(label):
    if label.startswith("floor") or label.startswith("Envoy, no"):
        return FLOOR
    if "jwt_authn" in label:
        return PEER
    if "jwt-authz" in label:
        return AUTHZ
    return OTHER


def suffix(data):
    return "" if data.get("run") == "full" else "\n(smoke run on a busy machine)"


def throughput(bars, title, path):
    if not bars:
        return
    labels = [b["label"] for b in bars][::-1]
    medians = [b["median"] for b in bars][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(bars) + 1.4))
    ax.barh(labels, medians, color=[color(l) for l in labels])
    for i, b in enumerate(bars[::-1]):
        ax.plot(b["rounds"], [i] * len(b["rounds"]), "k|", markersize=12)
        ax.text(b["median"], i, f"  {b['median']:,.0f}", va="center", fontsize=9)
    ax.set_xlabel("requests per second on one core (median; | = each round)")
    ax.set_title(title, fontsize=11)
    ax.set_xlim(0, max(max(b["rounds"] or [0]) for b in bars) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency(rows, title, path):
    if not rows:
        return
    labels = [r["label"] for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.75 * len(rows) + 1.4))
    h = 0.27
    for j, (key, name, alpha) in enumerate([("p50_us", "p50", 1.0), ("p90_us", "p90", 0.65), ("p99_us", "p99", 0.35)]):
        vals = [r[key] / 1000 for r in rows][::-1]
        ys = [i + (1 - j) * h for i in range(len(rows))]
        ax.barh(ys, vals, height=h, color=[color(l) for l in labels], alpha=alpha, label=name)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log scale; dark p50, mid p90, light p99)")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_ns(benches, title, path):
    if not benches:
        return
    algs = []
    for b in benches:
        if b["alg"] and b["alg"] not in algs:
            algs.append(b["alg"])
    if not algs:
        return
    fig, ax = plt.subplots(figsize=(9, 4))
    w = 0.38
    for j, (p, col) in enumerate([("cached", AUTHZ), ("uncached", PEER)]):
        vals = []
        for a in algs:
            ns = [b["ns_op"] for b in benches if b["alg"] == a and b["path"] == p]
            vals.append(ns[0] / 1000 if ns else 0)
        xs = [i + (j - 0.5) * w for i in range(len(algs))]
        ax.bar(xs, vals, width=w, color=col, label=p)
        for x, v in zip(xs, vals):
            if v:
                ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(algs)))
    ax.set_xticklabels(algs)
    ax.set_ylabel("µs per Check (in process, one core)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    data = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    s = suffix(data)
    throughput(data.get("grpc_rps"), "gRPC Check at saturation, server on one core" + s,
               os.path.join(out, "grpc_throughput.png"))
    latency(data.get("grpc_latency"), f"gRPC Check latency at {data.get('grpc_rate')} requests/s" + s,
            os.path.join(out, "grpc_latency.png"))
    throughput(data.get("envoy_rps"), "HTTP through Envoy at saturation, Envoy (+ jwt-authz) on one core" + s,
               os.path.join(out, "envoy_throughput.png"))
    latency(data.get("envoy_latency"), f"HTTP through Envoy at {data.get('envoy_rate')} requests/s" + s,
            os.path.join(out, "envoy_latency.png"))
    check_ns(data.get("gobench"), "go test -bench Check: jwt-authz's own cost per decision" + s,
             os.path.join(out, "check_ns.png"))


if __name__ == "__main__":
    main()
