//! An emulated `libnvidia-ml.so.1`: N GPUs whose sensors behave as NVML's do, driven by a
//! ground-truth power scenario, so NVML readers can be tested and compared without a GPU.
//!
//! Configured by the `NVML_EMULATOR` environment variable (see `device.rs`), read when the
//! library first needs it. Exports the NVML calls that hf-eco2ai (through `nvml-wrapper`),
//! pynvml-based Zeus and CodeCarbon make on their energy paths, with the struct layouts of
//! `nvml.h`, plus a few `nvml_emulator_*` control functions for tests (ctypes).
//!
//! Every exported function follows the C contract of its `nvml.h` namesake: pointers are the
//! caller's, valid for the call, and null pointers are refused with `INVALID_ARGUMENT`.
#![allow(clippy::missing_safety_doc)]

pub mod device;
pub mod scenario;

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use device::{Config, Device, Emulator, CONFIG_VARIABLE};
use scenario::Scenario;

type NvmlReturn = c_uint;
type NvmlDevice = *mut c_void;

const SUCCESS: NvmlReturn = 0;
const UNINITIALIZED: NvmlReturn = 1;
const INVALID_ARGUMENT: NvmlReturn = 2;
const NOT_SUPPORTED: NvmlReturn = 3;
const INSUFFICIENT_SIZE: NvmlReturn = 7;
const NOT_FOUND: NvmlReturn = 6;
const GPU_IS_LOST: NvmlReturn = 15;
const UNKNOWN: NvmlReturn = 999;

const FIELD_POWER_AVERAGE: c_uint = 185;
const FIELD_POWER_INSTANT: c_uint = 186;
const VALUE_TYPE_UNSIGNED_INT: c_uint = 1;
const ARCH_HOPPER: c_uint = 9;
const POWER_LIMIT_MW: c_uint = 700_000;
const MEMORY_TOTAL_BYTES: u64 = 80 * (1 << 30);

static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();
static INIT_COUNT: AtomicU32 = AtomicU32::new(0);

fn emulator() -> Result<&'static Emulator, &'static str> {
    EMULATOR
        .get_or_init(|| {
            let text = std::env::var(CONFIG_VARIABLE).unwrap_or_default();
            Config::parse(&text).map(Emulator::new)
        })
        .as_ref()
        .map_err(String::as_str)
}

fn pause_for_latency(emulator: &Emulator) {
    if emulator.config.latency_us > 0 {
        std::thread::sleep(std::time::Duration::from_micros(emulator.config.latency_us));
    }
}

/// The device behind a handle, after the checks every device call makes.
fn device_of(handle: NvmlDevice) -> Result<(&'static Emulator, &'static Device), NvmlReturn> {
    if INIT_COUNT.load(Ordering::Acquire) == 0 {
        return Err(UNINITIALIZED);
    }
    let emulator = emulator().map_err(|_| UNKNOWN)?;
    pause_for_latency(emulator);
    let index = (handle as usize >> 4).wrapping_sub(1);
    let device = emulator.devices.get(index).ok_or(INVALID_ARGUMENT)?;
    if emulator.is_lost(device) {
        return Err(GPU_IS_LOST);
    }
    Ok((emulator, device))
}

fn handle_of(index: usize) -> NvmlDevice {
    ((index + 1) << 4) as NvmlDevice
}

/// Runs `body` on a checked device and writes through a checked pointer.
unsafe fn with_device<T>(
    handle: NvmlDevice,
    out: *mut T,
    body: impl FnOnce(&Emulator, &Device) -> Result<T, NvmlReturn>,
) -> NvmlReturn {
    if out.is_null() {
        return INVALID_ARGUMENT;
    }
    match device_of(handle).and_then(|(e, d)| body(e, d)) {
        Ok(value) => {
            out.write(value);
            SUCCESS
        }
        Err(code) => code,
    }
}

/// Exports NVML getters of one value per device: `name(Out) => reading;` is
/// `name(device, out: *mut Out) -> nvmlReturn_t`, `with_device` with that reading, so every
/// getter makes the same handle and pointer checks; `name(Out, extra: T)` adds a trailing
/// argument the emulator ignores.
macro_rules! device_getters {
    ($($name:ident($out:ty $(, $extra:ident: $extra_ty:ty)?) => $read:expr;)+) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $name(
                device: NvmlDevice,
                out: *mut $out,
                $($extra: $extra_ty)?
            ) -> NvmlReturn {
                with_device(device, out, $read)
            }
        )+
    };
}

unsafe fn write_string(text: &str, buffer: *mut c_char, length: c_uint) -> NvmlReturn {
    if buffer.is_null() {
        return INVALID_ARGUMENT;
    }
    let bytes = text.as_bytes();
    if bytes.len() + 1 > length as usize {
        return INSUFFICIENT_SIZE;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), buffer, bytes.len());
    buffer.add(bytes.len()).write(0);
    SUCCESS
}

// Initialisation ---------------------------------------------------------------------------

fn init() -> NvmlReturn {
    match emulator() {
        Ok(e) if e.config.init_error != 0 => e.config.init_error,
        Ok(_) => {
            INIT_COUNT.fetch_add(1, Ordering::AcqRel);
            SUCCESS
        }
        Err(reason) => {
            eprintln!("nvml emulator: {reason}");
            UNKNOWN
        }
    }
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> NvmlReturn {
    init()
}

#[no_mangle]
pub extern "C" fn nvmlInit() -> NvmlReturn {
    init()
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> NvmlReturn {
    init()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> NvmlReturn {
    match INIT_COUNT.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
        Ok(_) => SUCCESS,
        Err(_) => UNINITIALIZED,
    }
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(result: NvmlReturn) -> *const c_char {
    let text: &'static CStr = match result {
        SUCCESS => c"Success",
        UNINITIALIZED => c"Uninitialized",
        INVALID_ARGUMENT => c"Invalid Argument",
        NOT_SUPPORTED => c"Not Supported",
        NOT_FOUND => c"Not Found",
        INSUFFICIENT_SIZE => c"Insufficient Size",
        9 => c"Driver Not Loaded",
        GPU_IS_LOST => c"GPU is lost",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    buffer: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    write_string("550.54.15", buffer, length)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    buffer: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    write_string("12.550.54.15", buffer, length)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(version: *mut c_int) -> NvmlReturn {
    if version.is_null() {
        return INVALID_ARGUMENT;
    }
    version.write(12040);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) -> NvmlReturn {
    nvmlSystemGetCudaDriverVersion(version)
}

// Enumeration ------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> NvmlReturn {
    if count.is_null() {
        return INVALID_ARGUMENT;
    }
    if INIT_COUNT.load(Ordering::Acquire) == 0 {
        return UNINITIALIZED;
    }
    match emulator() {
        Ok(e) => {
            count.write(e.config.gpus);
            SUCCESS
        }
        Err(_) => UNKNOWN,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount(count: *mut c_uint) -> NvmlReturn {
    nvmlDeviceGetCount_v2(count)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut NvmlDevice,
) -> NvmlReturn {
    if device.is_null() {
        return INVALID_ARGUMENT;
    }
    let handle = handle_of(index as usize);
    match device_of(handle) {
        Ok(_) => {
            device.write(handle);
            SUCCESS
        }
        Err(code) => code,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex(
    index: c_uint,
    device: *mut NvmlDevice,
) -> NvmlReturn {
    nvmlDeviceGetHandleByIndex_v2(index, device)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut NvmlDevice,
) -> NvmlReturn {
    if uuid.is_null() || device.is_null() {
        return INVALID_ARGUMENT;
    }
    let wanted = CStr::from_ptr(uuid).to_string_lossy();
    let Ok(emulator) = emulator() else {
        return UNKNOWN;
    };
    match emulator.devices.iter().position(|d| d.uuid == wanted) {
        Some(i) => {
            device.write(handle_of(i));
            SUCCESS
        }
        None => NOT_FOUND,
    }
}

device_getters! {
    nvmlDeviceGetIndex(c_uint) => |_, d| Ok(d.index);
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: NvmlDevice,
    buffer: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    match device_of(device) {
        Ok((_, d)) => write_string(&d.name, buffer, length),
        Err(code) => code,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: NvmlDevice,
    buffer: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    match device_of(device) {
        Ok((_, d)) => write_string(&d.uuid, buffer, length),
        Err(code) => code,
    }
}

/// `nvmlPciInfo_t` (the `_v3` layout).
#[repr(C)]
pub struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: NvmlDevice,
    pci: *mut PciInfo,
) -> NvmlReturn {
    with_device(device, pci, |_, d| {
        let mut info = PciInfo {
            bus_id_legacy: [0; 16],
            domain: 0,
            bus: 0x18 + d.index,
            device: 0,
            pci_device_id: 0x2330_10de,
            pci_sub_system_id: 0x16c1_10de,
            bus_id: [0; 32],
        };
        for (slot, byte) in info.bus_id.iter_mut().zip(d.pci_bus_id.bytes()) {
            *slot = byte as c_char;
        }
        for (slot, byte) in info
            .bus_id_legacy
            .iter_mut()
            .zip(d.pci_bus_id.bytes().skip(4).take(15))
        {
            *slot = byte as c_char;
        }
        Ok(info)
    })
}

device_getters! {
    nvmlDeviceGetArchitecture(c_uint) => |_, _| Ok(ARCH_HOPPER);
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: NvmlDevice,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> NvmlReturn {
    if pending.is_null() {
        return INVALID_ARGUMENT;
    }
    let code = with_device(device, current, |_, d| Ok(d.mig as c_uint));
    if code == SUCCESS {
        pending.write(current.read());
    }
    code
}

// Energy and power -------------------------------------------------------------------------

device_getters! {
    nvmlDeviceGetTotalEnergyConsumption(c_ulonglong) => |e, d| {
        d.energy_supported.then(|| e.counter_mj(d)).ok_or(NOT_SUPPORTED)
    };
    nvmlDeviceGetPowerUsage(c_uint) => |e, d| Ok(e.power_usage_mw(d));
}

/// `nvmlValue_t`: the union, 8 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Value {
    d_val: f64,
    si_val: c_int,
    ui_val: c_uint,
    ul_val: std::ffi::c_ulong,
    ull_val: c_ulonglong,
    sll_val: std::ffi::c_longlong,
    us_val: std::ffi::c_ushort,
}

/// `nvmlFieldValue_t`.
#[repr(C)]
pub struct FieldValue {
    field_id: c_uint,
    scope_id: c_uint,
    timestamp: std::ffi::c_longlong,
    latency_usec: std::ffi::c_longlong,
    value_type: c_uint,
    nvml_return: NvmlReturn,
    value: Value,
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: NvmlDevice,
    count: c_int,
    values: *mut FieldValue,
) -> NvmlReturn {
    if values.is_null() || count < 0 {
        return INVALID_ARGUMENT;
    }
    let (emulator, device) = match device_of(device) {
        Ok(found) => found,
        Err(code) => return code,
    };
    for i in 0..count as usize {
        let field = &mut *values.add(i);
        let reading = match field.field_id {
            FIELD_POWER_INSTANT => Some(emulator.instant_power(device)),
            FIELD_POWER_AVERAGE => Some((
                emulator.power_usage_mw(device),
                (device::monotonic_s() * 1e6) as i64,
            )),
            _ => None,
        };
        match reading {
            Some((milliwatts, timestamp_us)) => {
                field.timestamp = timestamp_us;
                field.latency_usec = 0;
                field.value_type = VALUE_TYPE_UNSIGNED_INT;
                field.nvml_return = SUCCESS;
                field.value = Value { ull_val: 0 };
                field.value.ui_val = milliwatts;
            }
            None => field.nvml_return = NOT_SUPPORTED,
        }
    }
    SUCCESS
}

device_getters! {
    nvmlDeviceGetPowerManagementLimit(c_uint) => |_, _| Ok(POWER_LIMIT_MW);
    nvmlDeviceGetPowerManagementDefaultLimit(c_uint) => |_, _| Ok(POWER_LIMIT_MW);
    nvmlDeviceGetEnforcedPowerLimit(c_uint) => |_, _| Ok(POWER_LIMIT_MW);
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimitConstraints(
    device: NvmlDevice,
    min_mw: *mut c_uint,
    max_mw: *mut c_uint,
) -> NvmlReturn {
    if max_mw.is_null() {
        return INVALID_ARGUMENT;
    }
    let code = with_device(device, min_mw, |_, _| Ok(200_000));
    if code == SUCCESS {
        max_mw.write(POWER_LIMIT_MW);
    }
    code
}

// Device state for exporters ---------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: NvmlDevice,
    _sensor: c_uint,
    celsius: *mut c_uint,
) -> NvmlReturn {
    with_device(device, celsius, |e, d| {
        Ok((35.0 + e.watts_now(d) / 20.0).round() as c_uint)
    })
}

/// `nvmlMemory_t`.
#[repr(C)]
pub struct Memory {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

const MEMORY_USED_BYTES: u64 = 10 * (1 << 30);

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: NvmlDevice,
    memory: *mut Memory,
) -> NvmlReturn {
    with_device(device, memory, |_, _| {
        Ok(Memory {
            total: MEMORY_TOTAL_BYTES,
            free: MEMORY_TOTAL_BYTES - MEMORY_USED_BYTES,
            used: MEMORY_USED_BYTES,
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: NvmlDevice,
    memory: *mut MemoryV2,
) -> NvmlReturn {
    if memory.is_null() {
        return INVALID_ARGUMENT;
    }
    let version = (*memory).version;
    with_device(device, memory, |_, _| {
        Ok(MemoryV2 {
            version,
            total: MEMORY_TOTAL_BYTES,
            reserved: 0,
            free: MEMORY_TOTAL_BYTES - MEMORY_USED_BYTES,
            used: MEMORY_USED_BYTES,
        })
    })
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: NvmlDevice,
    utilization: *mut Utilization,
) -> NvmlReturn {
    with_device(device, utilization, |e, d| {
        let percent = (100.0 * e.watts_now(d) / (POWER_LIMIT_MW as f64 * 1e-3)).clamp(0.0, 100.0);
        Ok(Utilization {
            gpu: percent.round() as c_uint,
            memory: (percent * 0.4).round() as c_uint,
        })
    })
}

// No process runs on an emulated GPU: the count is 0 and the process array is never written.
device_getters! {
    nvmlDeviceGetComputeRunningProcesses_v3(c_uint, _infos: *mut c_void) => |_, _| Ok(0);
    nvmlDeviceGetComputeRunningProcesses_v2(c_uint, _infos: *mut c_void) => |_, _| Ok(0);
    nvmlDeviceGetGraphicsRunningProcesses_v3(c_uint, _infos: *mut c_void) => |_, _| Ok(0);
    nvmlDeviceGetGraphicsRunningProcesses_v2(c_uint, _infos: *mut c_void) => |_, _| Ok(0);
}

device_getters! {
    nvmlDeviceGetPersistenceMode(c_uint) => |_, _| Ok(1);
    nvmlDeviceGetComputeMode(c_uint) => |_, _| Ok(0);
}

// Control, for tests -----------------------------------------------------------------------

/// The devices a control call addresses: one index, or every device for `u32::MAX`.
fn addressed(index: c_uint) -> Result<(&'static Emulator, Vec<&'static Device>), c_int> {
    let emulator = emulator().map_err(|_| -1)?;
    if index == c_uint::MAX {
        return Ok((emulator, emulator.devices.iter().collect()));
    }
    let device = emulator.devices.get(index as usize).ok_or(-1)?;
    Ok((emulator, vec![device]))
}

/// Switches GPU `index` (`u32::MAX`: every GPU) to the scenario `spec` from now on.
/// Returns 0, or -1 for an unknown GPU or a malformed spec (printed to stderr).
#[no_mangle]
pub unsafe extern "C" fn nvml_emulator_set_scenario(index: c_uint, spec: *const c_char) -> c_int {
    if spec.is_null() {
        return -1;
    }
    let scenario = match Scenario::parse(&CStr::from_ptr(spec).to_string_lossy()) {
        Ok(s) => s,
        Err(reason) => {
            eprintln!("nvml emulator: {reason}");
            return -1;
        }
    };
    match addressed(index) {
        Ok((emulator, devices)) => {
            for device in devices {
                emulator.switch(device, scenario.clone());
            }
            0
        }
        Err(code) => code,
    }
}

/// Sets GPU `index` (`u32::MAX`: every GPU) to a constant `watts` from now on.
#[no_mangle]
pub extern "C" fn nvml_emulator_set_watts(index: c_uint, watts: f64) -> c_int {
    if !(watts >= 0.0 && watts.is_finite()) {
        return -1;
    }
    match addressed(index) {
        Ok((emulator, devices)) => {
            for device in devices {
                emulator.switch(device, Scenario::Constant { watts });
            }
            0
        }
        Err(code) => code,
    }
}

/// True joules of GPU `index` between two instants of `time.monotonic()`; NaN if no such GPU.
#[no_mangle]
pub extern "C" fn nvml_emulator_true_joules(index: c_uint, t0_s: f64, t1_s: f64) -> f64 {
    match addressed(index) {
        Ok((emulator, devices)) => devices
            .iter()
            .map(|d| emulator.true_joules(d, t0_s, t1_s))
            .sum(),
        Err(_) => f64::NAN,
    }
}

/// True watts of GPU `index` at an instant of `time.monotonic()`; NaN if no such GPU.
#[no_mangle]
pub extern "C" fn nvml_emulator_true_watts(index: c_uint, t_s: f64) -> f64 {
    match addressed(index) {
        Ok((emulator, devices)) => devices.iter().map(|d| emulator.true_watts(d, t_s)).sum(),
        Err(_) => f64::NAN,
    }
}

/// Scenario time 0 on the monotonic clock (stairs are aligned to it).
#[no_mangle]
pub extern "C" fn nvml_emulator_origin_s() -> f64 {
    emulator().map_or(f64::NAN, |e| e.origin_s)
}
