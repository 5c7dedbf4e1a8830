"""MNIST Training Monitor: train small CNNs on MNIST and watch them learn, live.

The package map: docs/architecture.md. Entry points: server.py, train.py (the project root).
"""
