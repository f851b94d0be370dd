"""Transformer autoencoder over neuron tokens and its training losses."""
