"""i-PI input files for running molecules with ``densnet serve`` (classical or path integrals).

:func:`ipi_input` writes the ``<simulation>`` XML; :func:`write_ipi_xyz` the starting geometry
in the xyz dialect i-PI 3.3 reads (a cell in the comment line, even in vacuum: the model is
molecular and ``pbc='false'`` keeps i-PI from wrapping atoms).

Thermostats (``thermostat=``):

- ``None``: NVE (``<dynamics mode='nve'>``);
- ``"trpmd"``: thermostatted ring-polymer MD: PILE with λ = 0.5 on the internal ring-polymer
  modes and a weak global (SVR) thermostat, time constant ``tau_fs``, on the centroid;
- ``"pile_l"``: PILE-L (Langevin on every normal mode, λ = 1), for equilibration.

:func:`run_ipi_with_serve` runs i-PI with ``densnet serve`` as its driver and cleans up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ase import Atoms

CELL_LINE = "# CELL(abcABC): 50.0 50.0 50.0 90.0 90.0 90.0 cell{angstrom} positions{angstrom}"

THERMOSTATS = {
    "trpmd": "<thermostat mode='pile_g'><tau units='femtosecond'>{tau}</tau>"
             "<pile_lambda>0.5</pile_lambda></thermostat>",
    "pile_l": "<thermostat mode='pile_l'><tau units='femtosecond'>{tau}</tau>"
              "<pile_lambda>1.0</pile_lambda></thermostat>",
}


def socket_forcefield(name: str, batch_size: int = 1, latency_s: float = 1e-3,
                      exit_on_disconnect: bool = True) -> str:
    """An i-PI ``<ffsocket>`` on unix socket ``name``.

    ``batch_size`` > 1 lets i-PI send that many beads per request (``densnet serve`` evaluates
    them as one model batch); ``exit_on_disconnect`` stops i-PI if its driver dies.
    """
    return (f"<ffsocket name='densnet' mode='unix' pbc='false'><address>{name}</address>"
            f"<latency>{latency_s:g}</latency><batch_size>{batch_size}</batch_size>"
            f"<exit_on_disconnect>{str(exit_on_disconnect).lower()}</exit_on_disconnect>"
            "</ffsocket>")


def ipi_input(*, steps: int, forcefield: str, outputs: str, beads: int = 1,
              temperature_k: float = 300.0, timestep_fs: float = 0.5,
              thermostat: str | None = None, tau_fs: float = 100.0, seed: int = 12345,
              init: str = "init.xyz", prefix: str = "sim", fixcom: bool = True,
              extra: str = "") -> str:
    """The i-PI input XML of one run (see the module docstring for ``thermostat``).

    ``forcefield`` is an ``<ffsocket>``/``<ffdirect>`` element named ``densnet``;
    ``outputs`` the elements inside ``<output>``; ``extra`` goes after ``<total_steps>``
    (e.g. ``<total_time>``).  Velocities start from Maxwell–Boltzmann at ``temperature_k``.
    """
    if thermostat is None:
        dynamics = (f"<dynamics mode='nve'><timestep units='femtosecond'>{timestep_fs}"
                    "</timestep></dynamics>")
    elif thermostat in THERMOSTATS:
        dynamics = (f"<dynamics mode='nvt'><timestep units='femtosecond'>{timestep_fs}"
                    f"</timestep>{THERMOSTATS[thermostat].format(tau=tau_fs)}</dynamics>")
    else:
        raise ValueError(f"unknown thermostat {thermostat!r}: use one of "
                         f"{', '.join(THERMOSTATS)} or None")
    return f"""<simulation verbosity='low' safe_stride='100000' floatformat='%.17e'>
  <output prefix='{prefix}'>
    {outputs}
  </output>
  <total_steps>{steps}</total_steps>{extra}
  <prng><seed>{seed}</seed></prng>
  {forcefield}
  <system>
    <initialize nbeads='{beads}'>
      <file mode='xyz'>{init}</file>
      <velocities mode='thermal' units='kelvin'>{temperature_k}</velocities>
    </initialize>
    <forces><force forcefield='densnet'/></forces>
    <ensemble><temperature units='kelvin'>{temperature_k}</temperature></ensemble>
    <motion mode='dynamics'>
      <fixcom>{fixcom}</fixcom>
      {dynamics}
    </motion>
  </system>
</simulation>
"""


def write_ipi_xyz(atoms: Atoms, path: Path) -> Path:
    """``atoms`` as an xyz file i-PI 3.3 reads (cell in the comment line) and ASE reads too."""
    lines = [str(len(atoms)), CELL_LINE]
    lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}"
              for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions,
                                      strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_ipi_with_serve(work: Path, input_xml: str, serve_args: list[str], *,
                       timeout_s: float | None = None,
                       on_poll: Callable[[], None] | None = None, poll_s: float = 30.0
                       ) -> float:
    """Run i-PI on ``input_xml`` in ``work`` with ``densnet serve SERVE_ARGS`` as its driver.

    Both processes log to ``work/ipi.log`` and ``work/serve.log`` and run with one OpenMP
    thread; ``on_poll`` is called every ``poll_s`` seconds while i-PI runs (progress lines).
    Every process started is killed and the socket file removed, also on errors.

    Returns:
        The wall time in seconds.

    Raises:
        RuntimeError: if either process fails or ``timeout_s`` passes; names the logs.
    """
    bin_dir = Path(sys.executable).parent
    (work / "input.xml").write_text(input_xml)
    socket = serve_args[serve_args.index("--unix") + 1] if "--unix" in serve_args else None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    ipi = driver = None
    try:
        with open(work / "ipi.log", "w") as ipi_log, open(work / "serve.log", "w") as log:
            ipi = subprocess.Popen([str(bin_dir / "i-pi"), "input.xml"], cwd=work,
                                   stdout=ipi_log, stderr=subprocess.STDOUT, env=env)
            driver = subprocess.Popen([str(bin_dir / "densnet"), "serve", *serve_args],
                                      cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env)
            while ipi.poll() is None:
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    raise RuntimeError(f"i-PI did not finish within {timeout_s:g} s; see "
                                       f"{work}/ipi.log and {work}/serve.log")
                try:
                    ipi.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    if on_poll is not None:
                        on_poll()
            driver.wait(timeout=60)
    finally:
        for proc in (driver, ipi):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if socket is not None:
            Path(f"/tmp/ipi_{socket}").unlink(missing_ok=True)
    if ipi.returncode != 0 or driver.returncode != 0:
        raise RuntimeError(f"i-PI exited with {ipi.returncode}, densnet serve with "
                           f"{driver.returncode}; see {work}/ipi.log and {work}/serve.log")
    return time.monotonic() - start
