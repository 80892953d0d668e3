"""Kernel models: each turns one operation into events on the engine's units."""
