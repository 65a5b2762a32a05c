"""Analyses: control flow, activity."""
