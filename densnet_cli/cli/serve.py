"""``densnet serve``: the command-line face of :mod:`drivers.serve`."""

from __future__ import annotations

from pathlib import Path

import click

_PATH = click.Path(path_type=Path)


@click.command("serve")
@click.argument("model", type=_PATH)
@click.option("--template", type=_PATH, required=True,
              help="Structure file (any ASE format, positions in Å) giving the species in the "
                   "server's atom order; every POSDATA must carry this many atoms.")
@click.option("--unix", metavar="NAME", default=None,
              help="Connect to the unix socket PREFIX+NAME (i-PI <ffsocket mode='unix'>, "
                   "ASE SocketIOCalculator(unixsocket=NAME)). Preferred on one machine.")
@click.option("--unix-prefix", default="/tmp/ipi_", show_default=True,
              help="Directory and prefix of unix socket files.")
@click.option("--host", default=None, help="Server host for an inet socket [default: localhost].")
@click.option("--port", type=int, default=None, help="Server TCP port (inet socket).")
@click.option("--dipoles", type=_PATH, default=None,
              help="Write a dipole stream (e·Å; docs/dipole_stream.md) as the run goes, one "
                   "flushed line per bead and step; read by `densnet spectrum`.")
@click.option("--timestep", type=float, default=None, metavar="FS",
              help="MD time step in fs: fills the stream's time column and header "
                   "[default: times unknown (nan)].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the model runs (auto: CUDA when available).")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True, help="Floating precision of the model.")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="Torch CPU threads (0: torch's default). One is fastest for molecules of "
                   "up to a few hundred atoms; more only pays for large systems.")
@click.option("--charge", type=float, default=0.0, show_default=True,
              help="Net charge of the molecule (e).")
@click.option("--max-batch", type=int, default=64, show_default=True,
              help="Largest i-PI <batch_size> accepted (several beads per request).")
@click.option("--connect-timeout", type=click.FloatRange(min=0), default=60.0,
              show_default=True, help="Seconds to keep retrying until the server accepts.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the server's next request before giving up "
                   "(0: wait forever).")
@click.option("--require-exit/--no-require-exit", default=False, show_default=True,
              help="Treat EOF without EXIT as a crash of the server (i-PI always sends EXIT; "
                   "ASE's SocketIOCalculator never does).")
@click.option("--tag-beads/--no-tag-beads", default=True, show_default=True,
              help="Ask the server for INIT before every request so each carries its bead "
                   "index (numbers the dipole stream; one extra round trip per request).")
@click.option("--diagnosis", type=_PATH, default=Path("densnet-serve-failure.xyz"),
              show_default=True,
              help="Where to write the geometry (extxyz, Å) when a request cannot be answered "
                   "(non-finite input or result, wrong atom count).")
@click.option("--stats", type=_PATH, default=None,
              help="JSON file for timings: requests, model and protocol time per request (ms).")
def serve(**options) -> None:
    """Serve MODEL to an MD engine over the i-PI socket protocol (i-PI or ASE).

    Answers each request with the energy (Hartree), forces (Hartree/Bohr), zero virial and
    the extras JSON {"dipole": [x, y, z]} in e·Bohr (i-PI: <trajectory extra_type='dipole'>
    extras </trajectory>).  The model is molecular: no periodic boundary conditions.  Exits 0
    when the server sends EXIT or closes between requests, 1 on any error (a one-line
    message; a geometry that could not be answered is written to --diagnosis).
    See docs/serve.md.
    """
    from drivers.serve import ServeConfig, run_serve  # torch loads only when serving

    summary = run_serve(ServeConfig(**options))
    s = summary.stats
    line = f"densnet serve: {s['requests']} requests ({s['structures']} structures)"
    if s["requests"]:
        line += (f", {s['wall_ms_per_request']:.2f} ms per request "
                 f"(model {s['model_ms_per_request']:.2f} ms, "
                 f"protocol + server {s['overhead_ms_per_request']:.2f} ms)")
    click.echo(f"{line}; {summary.address} ended by {summary.ended_by}", err=True)
