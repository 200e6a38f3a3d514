"""The LivePortrait test kit: the checkpoint manifest and the synthetic-weight scheme of the reference contract.

Both files are copied byte for byte from the project's reference contract (see README.md here); do not edit them.
"""
