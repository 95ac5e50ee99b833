"""Test helpers shipped with nbops, such as the run store conformance suite."""
