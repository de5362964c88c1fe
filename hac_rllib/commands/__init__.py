"""Sub-apps of the ``hac`` CLI, one module per area."""
