"""Adapters: framework events translated into TrackingSession calls. Each imports its framework."""
