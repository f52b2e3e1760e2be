"""The rows the bench scripts compare, read back from what produced them: the lines of
shared/bench's pg/run_pg.sh (pgbench) and the reports of credits-bench (`--out`). One reader
for every script, so that a change of either format is met in one place."""
import re


def read(path):
    """The file's text, or "" when there is none (a run that failed)."""
    try:
        return open(path).read()
    except OSError:
        return ""


def baseline(text, variant, mode, clients):
    """(median TPS, "p50/p99" ms, consistency check) of run_pg.sh's line for the variant
    (cte, txn), mode (hot, spread) and client count, or None."""
    for line in text.splitlines():
        if f"variant={variant} mode={mode} clients={clients} " in line:
            field = lambda name: re.search(rf"\b{name}=(\S+)", line).group(1)
            return float(field("median_tps")), f"{field('p50_ms')}/{field('p99_ms')}", field("check")
    return None


def credits(text, scenario):
    """(requests/s, "p50/p99" ms, balance check, errors) of a credits-bench report's row for
    the scenario, or None."""
    row = next((l for l in text.splitlines() if l.startswith(f"| {scenario} |")), None)
    if row is None:
        return None
    cells = [c.strip() for c in row.strip("|").split("|")]
    check = "OK" if "Balance check: OK" in text else "MISMATCH"
    return float(cells[3].replace(",", "")), f"{cells[5]}/{cells[6]}", check, cells[8]
