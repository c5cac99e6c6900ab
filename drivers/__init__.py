"""What talks to MD engines: the i-PI wire protocol and socket client (``densnet serve``).

The driver is built on the model stage; see the project's issue tracker for its status.
"""
