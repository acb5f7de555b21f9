"""Exception classes: one per failure kind."""


class ModelBug(Exception):
    """A model reached a state the kernel cannot be in (a broken invariant inside a model)."""


class BadOp(ValueError):
    """The caller handed the model API something that is not an op (wrong type, out-of-range field)."""
