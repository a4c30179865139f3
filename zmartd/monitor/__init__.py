"""The market monitor: finalizes RESOLVING markets after their dispute window
and alerts operators (see :mod:`zmartd.monitor.actor`)."""
