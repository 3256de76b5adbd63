"""Every error the engine raises, as one tree.

    ContextDistillError
    ├── InputError                  the caller's input cannot be used (fix the input)
    │   ├── EmptyInputError         nothing to work on
    │   ├── BinaryInputError        bytes that are not text (NUL bytes, invalid UTF-8)
    │   ├── InputTooLargeError      over the configured size limit
    │   ├── BudgetError             ratio / target_tokens out of range
    │   ├── KeepPatternError        a keep pattern that is invalid or runs past its time limit
    │   └── TranscriptError         a transcript that cannot be read at all
    ├── AssetError                  a shipped file (tokenizer, model) is unusable
    │   ├── AssetMissingError       not found where it should be
    │   └── AssetCorruptError       found, but its sha256 is wrong or it does not load
    └── StoreError                  the on-disk stores (originals, handoffs)
        ├── HandleNotFoundError     no original stored under that handle
        └── StoreUnavailableError   the store directory cannot be written

Each message is one line that says what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ContextDistillError",
    "InputError",
    "EmptyInputError",
    "BinaryInputError",
    "InputTooLargeError",
    "BudgetError",
    "KeepPatternError",
    "TranscriptError",
    "AssetError",
    "AssetMissingError",
    "AssetCorruptError",
    "StoreError",
    "HandleNotFoundError",
    "StoreUnavailableError",
]


class ContextDistillError(Exception):
    """Base of every error raised on purpose by context-distill."""


class InputError(ContextDistillError, ValueError):
    """The caller's input cannot be used as given."""


class EmptyInputError(InputError):
    pass


class BinaryInputError(InputError):
    pass


class InputTooLargeError(InputError):
    pass


class BudgetError(InputError):
    pass


class KeepPatternError(InputError):
    """A ``keep`` pattern is invalid, unsupported, or ran past its time limit: the same for
    every part of an input, so it is the caller's error, never a per-part warning."""


class TranscriptError(InputError):
    pass


class AssetError(ContextDistillError):
    """A file shipped with the package (tokenizer ranks, deletion model) is unusable."""


class AssetMissingError(AssetError):
    pass


class AssetCorruptError(AssetError):
    pass


class StoreError(ContextDistillError):
    """Reading or writing one of the on-disk stores failed."""


class HandleNotFoundError(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "handle not found"


class StoreUnavailableError(StoreError):
    pass
