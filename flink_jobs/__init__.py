"""PyFlink job wiring: sources, pipelines, sinks, settings; logic lives in udfs/."""
