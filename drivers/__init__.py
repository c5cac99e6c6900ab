"""What talks to MD engines (``densnet serve``), in the order bytes flow.

* :mod:`drivers.connection` – opening the unix / inet socket, with a bounded wait for i-PI;
* :mod:`drivers.protocol` – the i-PI wire format: headers, framing, array packing;
* :mod:`drivers.session` – the driver's state machine for one connection;
* :mod:`drivers.potential` – what the session evaluates (positions Å → energy, forces,
  dipole) and the conversion to atomic units for the wire;
* :mod:`drivers.serve` – ``densnet serve``: model + template + connection + dipole stream;
* ``drivers/ipi_pes_densnet.py`` – an i-PI PES plugin (``i-pi-py_driver -m custom -P ...``,
  ``<ffdirect>``) running a DenSNet model inside i-PI's own processes.
"""
