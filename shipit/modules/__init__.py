"""Built-in modules; see :mod:`shipit.modules.base` for the contract."""
