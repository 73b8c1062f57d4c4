"""TensorBoard output with fixed tag groups, as CleanRL does: ``charts/*`` for what the search found,
``losses/*`` for the controller's optimisation, ``policy/*`` for what it believes; all against one step,
the number of architectures sampled so far."""

from __future__ import annotations

from pathlib import Path


class Monitor:
    """Writes scalars and text to ``logdir``; TensorFlow is imported only when a Monitor is made."""

    def __init__(self, logdir: str | Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(logdir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                self._tf.summary.scalar(tag, float(value))
        self._writer.flush()

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        with self._writer.as_default(step=step):
            self._tf.summary.text(tag, markdown)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
