//! The meter's mark as a plain C-level function object, for the per-step hot path.
//!
//! A training loop calls the mark once per step, between the step's kernels, when the binding
//! layer's code and data have left the core's caches. A method call through the generic binding
//! trampoline then pays for what the mark does not need: the thread-local GIL count, the
//! deferred reference-count pool, the receiver's type check and the conversion of the result.
//! This function is a `METH_NOARGS` C function over a capsule that points at the meter: the
//! interpreter calls it directly, and it does the mark alone.

use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::py::meter::PyMeter;
use crate::sampler::Meter;

const CAPSULE_NAME: &CStr = c"hf_eco2ai._core.Meter.mark";

/// A `PyMethodDef` may be shared between threads: the interpreter only reads it.
struct SharedMethodDef(ffi::PyMethodDef);
// SAFETY: every field is immutable after initialisation and points at static data.
unsafe impl Sync for SharedMethodDef {}

static MARK_DEF: SharedMethodDef = SharedMethodDef(ffi::PyMethodDef {
    ml_name: c"mark".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer { PyCFunction: mark },
    ml_flags: ffi::METH_NOARGS,
    ml_doc:
        c"A step boundary: one clock read and one lock-free push. False when not running or full."
            .as_ptr(),
});

unsafe extern "C" fn mark(
    capsule: *mut ffi::PyObject,
    _no_args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let meter = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr()).cast::<Meter>();
    if meter.is_null() {
        return null_mut();
    }
    // The mark does not panic (a clock read, atomics and a bounded queue); were it ever to, a
    // lost boundary is the right outcome, not an abort of the training process.
    // SAFETY: the capsule holds a strong reference to the meter's Python object (its context),
    // so the meter outlives every call.
    let pushed = catch_unwind(AssertUnwindSafe(|| (*meter).mark())).unwrap_or(false);
    let answer = if pushed {
        ffi::Py_True()
    } else {
        ffi::Py_False()
    };
    ffi::Py_IncRef(answer);
    answer
}

unsafe extern "C" fn release_owner(capsule: *mut ffi::PyObject) {
    ffi::Py_DecRef(ffi::PyCapsule_GetContext(capsule).cast::<ffi::PyObject>());
}

/// A function object that marks `owner`'s meter; it holds a strong reference to `owner`, so the
/// meter outlives it.
pub fn mark_function<'py>(owner: &Bound<'py, PyMeter>) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let meter: &Meter = &owner.get().inner;
    // SAFETY: plain C-API calls with the GIL held; each new reference is owned by a `Bound`. The
    // owner's reference is taken just before it becomes the capsule's context, and the capsule's
    // destructor releases it (a context never set is null, which `Py_DecRef` ignores).
    unsafe {
        let capsule = ffi::PyCapsule_New(
            (meter as *const Meter).cast_mut().cast::<c_void>(),
            CAPSULE_NAME.as_ptr(),
            Some(release_owner),
        );
        let capsule = Bound::from_owned_ptr_or_err(py, capsule)?;
        ffi::Py_IncRef(owner.as_ptr());
        if ffi::PyCapsule_SetContext(capsule.as_ptr(), owner.as_ptr().cast::<c_void>()) != 0 {
            ffi::Py_DecRef(owner.as_ptr());
            return Err(PyErr::fetch(py));
        }
        let function = ffi::PyCFunction_NewEx(
            std::ptr::addr_of!(MARK_DEF.0).cast_mut(),
            capsule.as_ptr(),
            null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, function)
    }
}
