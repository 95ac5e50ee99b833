"""Executing parametrised notebooks: declared parameters, code hashes, papermill runs."""

from __future__ import annotations

from nbops.execute._papermill import (
    CellError,
    ExecutionError,
    ExecutionResult,
    ExecutionTimeoutError,
    KernelDiedError,
    KernelNotFoundError,
    execute_notebook,
    kernel_name_of,
    kill_kernel,
    start_kernel,
)
from nbops.execute._parameters import (
    NotebookError,
    Parameter,
    ParameterError,
    check_parameters,
    code_hash,
    declared_parameters,
    kernelspec_name,
    read_notebook,
)

__all__ = [
    "CellError",
    "ExecutionError",
    "ExecutionResult",
    "ExecutionTimeoutError",
    "KernelDiedError",
    "KernelNotFoundError",
    "NotebookError",
    "Parameter",
    "ParameterError",
    "check_parameters",
    "code_hash",
    "declared_parameters",
    "execute_notebook",
    "kernel_name_of",
    "kernelspec_name",
    "kill_kernel",
    "read_notebook",
    "start_kernel",
]
