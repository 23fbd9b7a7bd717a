"""Folder translation plumbing: decoding ahead in worker threads and grouping images of
one size into batches, so that reading and writing files overlap with the generator (TF
releases the GIL while it computes) and the generator runs on whole batches."""

import collections


def read_ahead(pool, items, read, window):
    """Yields (item, read(item), None) or (item, None, error) in the order of `items`;
    `read` runs in `pool` at most `window` items ahead of the consumer."""
    pending = collections.deque()

    def oldest():
        item, future = pending.popleft()
        try:
            return item, future.result(), None
        except Exception as error:  # the caller names the item and goes on
            return item, None, error

    for item in items:
        pending.append((item, pool.submit(read, item)))
        if len(pending) > window:
            yield oldest()
    while pending:
        yield oldest()


class SizeBatches:
    """Collects (key, image) pairs into batches of up to `batch_size` images of the same
    height and width (a batch needs one shape)."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.groups = {}

    def add(self, key, image):
        """Adds one image; returns its batch [(key, image), ...] once that is full, else None."""
        group = self.groups.setdefault(image.shape, [])
        group.append((key, image))
        return self.groups.pop(image.shape) if len(group) >= self.batch_size else None

    def rest(self):
        """The batches not yet full, emptying the collector."""
        batches, self.groups = list(self.groups.values()), {}
        return batches
