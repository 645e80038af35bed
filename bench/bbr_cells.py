"""BBR goodput through the lossy relay, two seeds a cell, beside Linux's BBR:
python bench/bbr_cells.py RTTS LOSSES [CONFIG_JSON] [linux]  e.g. 0.02,0.1 0.01,0.05 {"congestion": "bbr"} linux"""
import asyncio, sys, json
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import lossy, linux_path
rtts = [float(x) for x in sys.argv[1].split(",")]
losses = [float(x) for x in sys.argv[2].split(",")]
cfg = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {"congestion": "bbr"}
linux = len(sys.argv) > 4
async def main():
    for rtt in rtts:
        for loss in losses:
            runs = [await lossy.aiotcp_goodput(6, rtt, loss, cfg, seed=s) for s in (1, 2)]
            line = f"rtt {rtt*1000:.0f} loss {loss*100:g}%: aiotcp {sum(runs)/2:.1f} ({runs[0]:.1f}, {runs[1]:.1f})"
            if linux:
                cell = lossy.linux_cell("bbr", 6, rtt, loss, 1, why=linux_path.why_not())
                line += f" linux bbr {cell.get('mbps', cell.get('why'))}"
            print(line, flush=True)
asyncio.run(main())
