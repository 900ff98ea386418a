"""The exceptions the fruits core raises, one class per kind of failure.

Each also derives from the builtin exception it means, so existing
``except OSError`` or ``except ValueError`` code keeps working::

    FruitsError
    ├── InputError (ValueError)          bad data or arguments: no rows, wrong column, bad k
    ├── ModelError                       the image model cannot be loaded or run
    ├── ModelMismatch (ValueError)       data, PCA or classifier made with another model
    └── StorageError (OSError)           reading or writing a folder or S3
        ├── NotFound (FileNotFoundError)     a file, object or bucket that does not exist
        ├── AccessDenied (PermissionError)   the credentials lack a permission
        ├── CredentialsError                 no credentials, or refused ones
        ├── RegionNotAllowed                 a bucket outside the allowed regions (GDPR)
        └── Unreachable (ConnectionError)    the service did not answer after retrying

The Rust extension picks the class in one place (``crates/fruits-py/src/error.rs``).
"""


class FruitsError(Exception):
    """Base class of every error the fruits core raises."""


class InputError(FruitsError, ValueError):
    """The data or the arguments cannot be used (the message says why)."""


class ModelError(FruitsError):
    """The image model (or ONNX Runtime) cannot be loaded or run."""


class ModelMismatch(FruitsError, ValueError):
    """Data, a PCA or a classifier made with another image model or PCA."""


class StorageError(FruitsError, OSError):
    """Reading or writing a local folder or an S3 prefix failed."""


class NotFound(StorageError, FileNotFoundError):
    """A file, object, folder or bucket does not exist."""


class AccessDenied(StorageError, PermissionError):
    """The credentials are valid but lack a permission (the message names it and the bucket)."""


class CredentialsError(StorageError):
    """No credentials were found, or the service refused them."""


class RegionNotAllowed(StorageError):
    """A bucket lives outside the allowed regions (eu-west-3 unless FRUITS_ALLOW_REGIONS adds one)."""


class Unreachable(StorageError, ConnectionError):
    """The storage service did not answer, even after retrying."""


__all__ = [
    "FruitsError",
    "InputError",
    "ModelError",
    "ModelMismatch",
    "StorageError",
    "NotFound",
    "AccessDenied",
    "CredentialsError",
    "RegionNotAllowed",
    "Unreachable",
]
