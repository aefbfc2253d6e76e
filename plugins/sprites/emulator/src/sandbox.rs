//! Per-sprite isolation with Linux namespaces.
//!
//! A sprite that is awake has one *holder*: this executable re-run as `__sandbox`. It unshares a
//! mount and a PID namespace and forks the namespace's init process, which builds the sprite's
//! view of the filesystem on a tmpfs:
//!
//! - every top-level host directory bind-mounted **read-only** (recursively), except `/home`,
//!   `/tmp`, `/run`, `/dev`, `/proc`, `/sys` and `/root`;
//! - the sprite's own `/home/sprite`, `/tmp` and `/.sprite` bound read-write from its disk, and
//!   its checkpoints read-only at `/.sprite/checkpoints`;
//! - the emulator's data directory and `/root` covered by empty read-only tmpfs mounts, so one
//!   sprite cannot see another's files;
//! - a minimal `/dev` (null, zero, full, random, urandom, tty, a private devpts), a fresh `/proc`
//!   for the PID namespace, `/sys` read-only, an empty `/run`;
//!
//! then pivots into it and finally unshares a user namespace (uid 0 mapped to the emulator's uid)
//! together with a new mount, network (only `lo`, brought up), UTS (hostname = sprite name) and
//! IPC namespace. Moving the mounts into a less privileged user namespace locks them: root inside
//! the sprite cannot unmount or remount them read-write.
//!
//! Exec'd processes join those namespaces in `pre_exec` and fork once more, so the program runs
//! inside the PID namespace while the intermediate process (outside it) waits and passes the exit
//! status on. With a TTY the program itself (not the intermediate) is the session leader owning
//! the PTY, so job control sees process groups of its own namespace; the intermediate leads the
//! process group the emulator signals and forwards what it receives to the program's group. Killing the init process ends every process of the sprite (going cold).
//!
//! When the emulator runs unprivileged, the holder first enters a user namespace of its own.

use std::ffi::{CStr, CString};
use std::io::{BufRead, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pivot_root, sethostname};

/// First argument that runs this executable as the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox";

/// Directories of the host that the sprite does not see as they are.
const REPLACED: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "tmp",
    "home",
    "run",
    "root",
    ".sprite",
    "lost+found",
];

/// Entry point of the helper (before any thread exists).
pub fn helper_main(args: Vec<String>) -> ExitCode {
    match helper(args) {
        Ok(code) => code,
        Err(e) => {
            println!("error {e}");
            let _ = std::io::stdout().flush();
            ExitCode::from(1)
        }
    }
}

struct HelperArgs {
    root: PathBuf,
    checkpoints: Option<PathBuf>,
    stage: PathBuf,
    hide: PathBuf,
    hostname: String,
    languages: Vec<(String, PathBuf)>,
    ca_bundle: Option<PathBuf>,
}

fn parse_helper_args(args: &[String]) -> Result<HelperArgs, String> {
    let mut root = None;
    let mut checkpoints = None;
    let mut stage = None;
    let mut hide = None;
    let mut hostname = None;
    let mut languages = Vec::new();
    let mut ca_bundle = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(v)),
            "--checkpoints" => checkpoints = Some(PathBuf::from(v)),
            "--stage" => stage = Some(PathBuf::from(v)),
            "--hide" => hide = Some(PathBuf::from(v)),
            "--hostname" => hostname = Some(v.clone()),
            "--ca-bundle" => ca_bundle = Some(PathBuf::from(v)),
            "--language" => {
                let (n, d) = v.split_once('=').ok_or("--language needs NAME=DIR")?;
                languages.push((n.to_owned(), PathBuf::from(d)));
            }
            other => return Err(format!("unknown helper flag {other}")),
        }
    }
    Ok(HelperArgs {
        root: root.ok_or("--root missing")?,
        checkpoints,
        stage: stage.ok_or("--stage missing")?,
        hide: hide.ok_or("--hide missing")?,
        hostname: hostname.ok_or("--hostname missing")?,
        languages,
        ca_bundle,
    })
}

fn enter_own_userns_if_unprivileged() -> Result<(), String> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    if uid == 0 {
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare(user): {e}"))?;
    write_maps(uid, gid)
}

fn write_maps(outer_uid: u32, outer_gid: u32) -> Result<(), String> {
    std::fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {outer_uid} 1"))
        .map_err(|e| format!("uid_map: {e}"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {outer_gid} 1"))
        .map_err(|e| format!("gid_map: {e}"))?;
    Ok(())
}

fn helper(args: Vec<String>) -> Result<ExitCode, String> {
    let probe = args.first().map(String::as_str) == Some("--probe");
    let parsed = if probe {
        None
    } else {
        Some(parse_helper_args(&args)?)
    };
    enter_own_userns_if_unprivileged()?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("unshare(mount, pid): {e}"))?;
    let (rd, wr) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper is single-threaded here (no thread has been started).
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(rd);
            let res = match &parsed {
                None => probe_child(),
                Some(a) => init_child(a),
            };
            let mut w = std::fs::File::from(wr);
            match res {
                Ok(()) => {
                    let _ = w.write_all(b"ok");
                    drop(w);
                    if probe {
                        std::process::exit(0);
                    }
                    reap_forever()
                }
                Err(e) => {
                    let _ = w.write_all(e.as_bytes());
                    std::process::exit(1);
                }
            }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            if msg != "ok" {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(if msg.is_empty() {
                    "sandbox init exited without a word".to_owned()
                } else {
                    msg
                });
            }
            if probe {
                let _ = waitpid(child, None);
                println!("ok");
                return Ok(ExitCode::SUCCESS);
            }
            println!("ready {}", child.as_raw());
            let _ = std::io::stdout().flush();
            // The emulator holds our stdin; when it goes away (EOF), the sprite's processes die.
            // (No thread here: a process that unshared its PID namespace cannot create threads.)
            let mut stdin_open = true;
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_) => break,
                    Ok(_) => {}
                }
                if !stdin_open {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                let mut pfd = libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll on one valid pollfd.
                let rc = unsafe { libc::poll(&mut pfd, 1, 200) };
                if rc > 0 {
                    let mut buf = [0u8; 256];
                    // SAFETY: reading into a local buffer.
                    let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                    if n <= 0 {
                        stdin_open = false;
                        let _ = kill(child, Signal::SIGKILL);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn probe_child() -> Result<(), String> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    )
    .map_err(|e| format!("unshare(user, mount, net): {e}"))?;
    write_maps(uid, gid)
}

fn m(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(src, target, fstype, flags, data)
        .map_err(|e| format!("mount {:?} on {}: {e}", src, target.display()))
}

fn bind(src: &Path, target: &Path, readonly: bool) -> Result<(), String> {
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} on {}: {e}", src.display(), target.display()))?;
    if readonly {
        make_readonly_recursive(target)?;
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

fn make_readonly_recursive(target: &Path) -> Result<(), String> {
    let c = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| "path with NUL".to_owned())?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: plain system call with a valid C string and a properly sized, initialised struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Older kernels: the top mount only.
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| format!("remount {} read-only: {e}", target.display()))
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

fn touch(p: &Path) -> Result<(), String> {
    std::fs::File::create(p)
        .map(|_| ())
        .map_err(|e| format!("create {}: {e}", p.display()))
}

fn init_child(a: &HelperArgs) -> Result<(), String> {
    // If the helper dies, so does the sprite.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let stage = &a.stage;
    m(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    mkdir(stage)?;
    m(
        Some("tmpfs"),
        stage,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )?;
    let entries = std::fs::read_dir("/").map_err(|e| format!("read /: {e}"))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name.to_str() else { continue };
        if REPLACED.contains(&n) {
            continue;
        }
        let src = Path::new("/").join(n);
        let dst = stage.join(n);
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(t) = std::fs::read_link(&src) {
                let _ = std::os::unix::fs::symlink(t, &dst);
            }
        } else if meta.is_dir() {
            mkdir(&dst)?;
            bind(&src, &dst, true)?;
        } else if meta.is_file() {
            touch(&dst)?;
            bind(&src, &dst, true)?;
        }
    }
    // The sprite's own disk.
    for (sub, inside) in [
        ("home/sprite", "home/sprite"),
        ("tmp", "tmp"),
        (".sprite", ".sprite"),
    ] {
        let dst = stage.join(inside);
        mkdir(&dst)?;
        bind(&a.root.join(sub), &dst, false)?;
    }
    // The base image's language runtimes, read-only (the mount points are made on the
    // sprite's own disk, empty).
    for (name, dir) in &a.languages {
        let dst = stage.join(".sprite/languages").join(name);
        mkdir(&dst)?;
        bind(dir, &dst, true)?;
    }
    // The system bundle with the sprite-URL CA over the host's (read-only, like the rest).
    if let Some(bundle) = &a.ca_bundle {
        let dst = stage.join("etc/ssl/certs/ca-certificates.crt");
        if dst.is_file() {
            bind(bundle, &dst, true)?;
        }
    }
    // Checkpoints are visible read-only at /.sprite/checkpoints (as on the real service).
    if let Some(cp) = &a.checkpoints
        && cp.is_dir()
    {
        let dst = stage.join(".sprite/checkpoints");
        mkdir(&dst)?;
        bind(cp, &dst, true)?;
    }
    for empty in ["run", "root"] {
        let dst = stage.join(empty);
        mkdir(&dst)?;
        m(
            Some("tmpfs"),
            &dst,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755"),
        )?;
    }
    // A minimal /dev.
    let dev = stage.join("dev");
    mkdir(&dev)?;
    m(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=755"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(node);
        touch(&dst)?;
        bind(&Path::new("/dev").join(node), &dst, false)?;
    }
    mkdir(&dev.join("pts"))?;
    m(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )?;
    let _ = std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"));
    mkdir(&dev.join("shm"))?;
    m(
        Some("tmpfs"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(t, dev.join(l));
    }
    let proc_dir = stage.join("proc");
    mkdir(&proc_dir)?;
    m(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    let sys = stage.join("sys");
    mkdir(&sys)?;
    bind(Path::new("/sys"), &sys, true)?;
    // Cover the data directory (every sprite's disk) wherever it shows through a host bind.
    if let Ok(rel) = a.hide.strip_prefix("/") {
        let hidden = stage.join(rel);
        if !rel.as_os_str().is_empty() && hidden.is_dir() {
            m(
                Some("tmpfs"),
                &hidden,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RDONLY,
                Some("size=4k,mode=755"),
            )?;
        }
    }
    let old = stage.join(".oldroot");
    mkdir(&old)?;
    pivot_root(stage, &old).map_err(|e| format!("pivot_root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    umount2("/.oldroot", MntFlags::MNT_DETACH).map_err(|e| format!("umount old root: {e}"))?;
    let _ = std::fs::remove_dir("/.oldroot");
    m(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None,
    )?;
    // Lock it all: a user namespace of its own, with a network that only has lo.
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    )
    .map_err(|e| format!("unshare(user, mount, net, uts, ipc): {e}"))?;
    // Our euid is 0 at this point (real root, or root of the helper's own user namespace).
    write_maps(0, 0)?;
    let host = a.hostname.chars().take(63).collect::<String>();
    sethostname(&host).map_err(|e| format!("sethostname: {e}"))?;
    loopback_up()?;
    Ok(())
}

fn loopback_up() -> Result<(), String> {
    // SAFETY: socket/ioctl on a zeroed ifreq with a NUL-terminated name that fits.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("SIOCGIFFLAGS lo: {e}"));
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            return Err(format!("SIOCSIFFLAGS lo: {e}"));
        }
    }
    Ok(())
}

fn reap_forever() -> ! {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let _ = set.wait();
    }
}

/// The namespaces of an awake sprite, opened for `setns` in a child before exec.
#[derive(Debug)]
pub struct NsFds {
    fds: Vec<(OwnedFd, CloneFlags)>,
}

impl NsFds {
    /// Opens the namespaces of the init process `init_pid` (and, when the emulator is
    /// unprivileged, the outer user namespace of the helper `helper_pid`).
    pub fn open(init_pid: i32, helper_pid: Option<i32>) -> std::io::Result<Self> {
        let open = |pid: i32, ns: &str| -> std::io::Result<OwnedFd> {
            Ok(std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))?.into())
        };
        let mut fds = Vec::new();
        if nix::unistd::geteuid().as_raw() != 0
            && let Some(h) = helper_pid
        {
            fds.push((open(h, "user")?, CloneFlags::CLONE_NEWUSER));
        }
        fds.push((open(init_pid, "pid")?, CloneFlags::CLONE_NEWPID));
        fds.push((open(init_pid, "user")?, CloneFlags::CLONE_NEWUSER));
        fds.push((open(init_pid, "mnt")?, CloneFlags::CLONE_NEWNS));
        fds.push((open(init_pid, "net")?, CloneFlags::CLONE_NEWNET));
        fds.push((open(init_pid, "uts")?, CloneFlags::CLONE_NEWUTS));
        fds.push((open(init_pid, "ipc")?, CloneFlags::CLONE_NEWIPC));
        Ok(NsFds { fds })
    }
}

/// Runs in the forked child before exec: enter the sprite, change directory, start a session
/// (TTY) or process group, and (with namespaces) fork once more so the program runs inside the
/// PID namespace while this process waits for it and exits with its status.
///
/// # Safety
/// Must only be called between fork and exec (from `pre_exec`).
pub unsafe fn child_setup(
    ns: Option<&NsFds>,
    cwd: &CStr,
    tty: bool,
    limits: &crate::limits::ChildLimits,
) -> std::io::Result<()> {
    // Before entering the sprite: its /sys is read-only, the cgroup must be joined from here.
    // SAFETY: we are between fork and exec, as this function's own contract requires.
    unsafe { crate::limits::apply_in_child(limits) }?;
    if let Some(ns) = ns {
        for (fd, flag) in &ns.fds {
            setns(fd, *flag)?;
        }
    }
    nix::unistd::chdir(cwd)?;
    if ns.is_none() {
        // No PID namespace: this process is the program.
        // SAFETY: between fork and exec, fd 0 is the PTY slave when `tty`.
        unsafe { lead_session_or_group(tty) }?;
        // Without a PID namespace nothing else ends the program when the emulator dies.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        return Ok(());
    }
    // This intermediate stays outside the PID namespace and leads its own process group, which
    // is what the emulator signals (`kill(-pgid)`). Without a TTY the program stays in that
    // group; with one it becomes a session leader below, and the intermediate forwards signals.
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    let all = SigSet::all();
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old))?;
    // SAFETY: we are the single-threaded child of a fork; the grandchild goes on to exec.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // The program, inside the sprite's PID namespace. With a TTY it must itself be the
            // session leader owning the terminal: job control (tcsetpgrp, the foreground group
            // ^C and SIGWINCH go to) only works with process groups visible in its namespace.
            if tty {
                // SAFETY: between fork and exec; fd 0 is the PTY slave.
                unsafe { lead_session_or_group(true) }?;
            }
            // If the intermediate is killed (SIGKILL to the session's group), so is the program.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
            Ok(())
        }
        child => {
            // The intermediate keeps no descriptor: EOF on the pipes and std's exec-error pipe
            // must depend on the program alone.
            // SAFETY: closing our own descriptors; nothing here uses them afterwards.
            unsafe { libc::close_range(0, libc::c_uint::MAX, 0) };
            // SAFETY: waiting for (and signalling) our own child; every signal is blocked.
            let code = unsafe { wait_forwarding(child, tty) };
            // SAFETY: terminating the intermediate without running destructors.
            unsafe { libc::_exit(code) }
        }
    }
}

/// With a TTY: `setsid` and make fd 0 (the PTY slave) the controlling terminal; without one:
/// a process group of its own.
///
/// # Safety
/// Between fork and exec only.
unsafe fn lead_session_or_group(tty: bool) -> std::io::Result<()> {
    if tty {
        nix::unistd::setsid()?;
        // SAFETY: fd 0 is the PTY slave std installed before running pre_exec.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    } else {
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    }
    Ok(())
}

/// The intermediate's wait for the program `child`: its exit code (128 + signal when killed).
/// With `forward` (TTY: the program leads its own session and group) every signal the
/// intermediate receives is passed on to the program's process group. All signals are blocked
/// here, so they are taken synchronously with `sigwaitinfo`.
///
/// # Safety
/// Only in the forked intermediate, with every signal blocked.
unsafe fn wait_forwarding(child: libc::pid_t, forward: bool) -> i32 {
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed sigset_t filled by sigfillset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigfillset(&mut set) };
    loop {
        let flags = if forward { libc::WNOHANG } else { 0 };
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(child, &mut status, flags) };
        if rc == child {
            break;
        }
        if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 255;
        }
        if rc == 0 {
            // Still running: wait for the next signal (a SIGCHLD stays pending while blocked,
            // so an exit between waitpid and here is not missed).
            // SAFETY: a valid, filled signal set; no siginfo wanted.
            let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
            if sig > 0 && sig != libc::SIGCHLD {
                // SAFETY: signalling our own child's process group (or the child itself if it
                // has not made its group yet).
                unsafe {
                    if libc::kill(-child, sig) < 0 {
                        libc::kill(child, sig);
                    }
                }
            }
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Process ids (as the host sees them) of every live process in the PID namespace of
/// `init_pid`, except the init itself.
pub fn ns_members(init_pid: i32) -> Vec<i32> {
    let Ok(target) = std::fs::read_link(format!("/proc/{init_pid}/ns/pid")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|&pid| pid != init_pid)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == target))
        // Zombies are already dead: nothing to stop or count.
        .filter(|pid| alive(*pid))
        .collect()
}

/// The state letter of a process (`R`, `S`, `T`, `Z`, ...) from `/proc/PID/stat`.
fn proc_state(pid: i32) -> Option<char> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    !matches!(proc_state(pid), Some('Z') | Some('X') | None)
}

/// How many of `pids` are stopped (state `T`).
pub fn count_stopped(pids: &[i32]) -> usize {
    pids.iter()
        .filter(|pid| proc_state(**pid) == Some('T'))
        .count()
}

/// What [`connect_in_netns`] and [`listen_in_netns`] make inside a sprite's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetOp {
    Connect,
    Listen,
}

/// Connects to `addr` from inside the network namespace of `init_pid`.
///
/// As root, a short-lived thread joins the namespace (`setns(net)` affects only that thread).
/// Unprivileged, joining needs the sprite's user namespace first, which a thread of a
/// multithreaded process cannot join; a forked child does it and passes the socket back.
pub fn connect_in_netns(
    init_pid: i32,
    helper_pid: Option<i32>,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    socket_in_netns(init_pid, helper_pid, addr, NetOp::Connect).map(std::net::TcpStream::from)
}

/// A TCP listener on `addr` inside the network namespace of `init_pid` (made the same way as
/// [`connect_in_netns`]): what it accepts comes from the sprite, while the process using it
/// stays in its own namespace.
pub fn listen_in_netns(
    init_pid: i32,
    helper_pid: Option<i32>,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpListener> {
    socket_in_netns(init_pid, helper_pid, addr, NetOp::Listen).map(std::net::TcpListener::from)
}

fn socket_in_netns(
    init_pid: i32,
    helper_pid: Option<i32>,
    addr: std::net::SocketAddr,
    op: NetOp,
) -> std::io::Result<OwnedFd> {
    if nix::unistd::geteuid().as_raw() != 0 {
        return socket_forked(init_pid, helper_pid, addr, op);
    }
    let ns = std::fs::File::open(format!("/proc/{init_pid}/ns/net"))?;
    std::thread::spawn(move || -> std::io::Result<OwnedFd> {
        setns(&ns, CloneFlags::CLONE_NEWNET)?;
        Ok(match op {
            NetOp::Connect => {
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))?
                    .into()
            }
            NetOp::Listen => std::net::TcpListener::bind(addr)?.into(),
        })
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace socket thread panicked"))?
}

fn socket_forked(
    init_pid: i32,
    helper_pid: Option<i32>,
    addr: std::net::SocketAddr,
    op: NetOp,
) -> std::io::Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let std::net::SocketAddr::V4(v4) = addr else {
        return Err(std::io::Error::other("only IPv4 addresses are supported"));
    };
    let mut nss: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    if let Some(h) = helper_pid {
        nss.push((
            std::fs::File::open(format!("/proc/{h}/ns/user"))?.into(),
            CloneFlags::CLONE_NEWUSER,
        ));
    }
    nss.push((
        std::fs::File::open(format!("/proc/{init_pid}/ns/user"))?.into(),
        CloneFlags::CLONE_NEWUSER,
    ));
    nss.push((
        std::fs::File::open(format!("/proc/{init_pid}/ns/net"))?.into(),
        CloneFlags::CLONE_NEWNET,
    ));
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair()?;
    // SAFETY: an all-zero sockaddr_in is valid; fields are set below.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    let sa_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the child only makes system calls (setns, socket, connect or bind/listen,
    // sendmsg) on data prepared before the fork, then _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let code = (|| -> Result<(), i32> {
            for (fd, flag) in &nss {
                setns(fd, *flag).map_err(|e| e as i32)?;
            }
            // SAFETY: plain socket calls on values owned by this child.
            unsafe {
                let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if s < 0 {
                    return Err(*libc::__errno_location());
                }
                let sa_ptr = (&sa as *const libc::sockaddr_in).cast();
                let ok = match op {
                    NetOp::Connect => libc::connect(s, sa_ptr, sa_len) == 0,
                    NetOp::Listen => {
                        let one: libc::c_int = 1;
                        libc::setsockopt(
                            s,
                            libc::SOL_SOCKET,
                            libc::SO_REUSEADDR,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        );
                        libc::bind(s, sa_ptr, sa_len) == 0 && libc::listen(s, 128) == 0
                    }
                };
                if !ok {
                    return Err(*libc::__errno_location());
                }
                send_fd(child_end.as_raw_fd(), s)
            }
        })();
        let errno = match code {
            Ok(()) => 0,
            Err(e) => e.clamp(1, 255),
        };
        // SAFETY: leave the forked child without running destructors.
        unsafe { libc::_exit(errno) };
    }
    drop(child_end);
    drop(nss);
    let received = recv_fd(parent_end.as_raw_fd());
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match received {
        // SAFETY: the descriptor just arrived over SCM_RIGHTS and is ours.
        Some(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        None => {
            let errno = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                libc::EIO
            };
            Err(std::io::Error::from_raw_os_error(errno))
        }
    }
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS).
///
/// # Safety
/// `sock` and `fd` must be open descriptors.
unsafe fn send_fd(sock: i32, fd: i32) -> Result<(), i32> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; the control buffer is large and aligned enough for one fd.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(*libc::__errno_location());
        }
    }
    Ok(())
}

fn recv_fd(sock: i32) -> Option<i32> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in send_fd; the kernel fills the control buffer we provide.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) <= 0 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
    }
}

/// Checks whether namespaces work here by running the helper in probe mode.
pub fn probe(helper: &Path) -> Result<(), String> {
    let out = std::process::Command::new(helper)
        .args([HELPER_ARG, "--probe"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", helper.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && text.lines().next() == Some("ok") {
        Ok(())
    } else {
        Err(text
            .lines()
            .next()
            .unwrap_or("probe failed")
            .trim_start_matches("error ")
            .to_owned())
    }
}

/// A running holder: the helper process and the init of the sprite's namespaces.
#[derive(Debug)]
pub struct Holder {
    child: tokio::process::Child,
    /// Host pid of the namespace init.
    pub init_pid: i32,
    /// Host pid of the helper.
    pub helper_pid: Option<i32>,
    /// Processes this holder stopped when going warm (and only those are continued).
    frozen: std::sync::Mutex<Vec<i32>>,
}

impl Holder {
    /// Starts the holder for the sprite whose disk is `root`.
    pub async fn start(
        helper: &Path,
        root: &Path,
        stage: &Path,
        hide: &Path,
        hostname: &str,
        languages: &[crate::languages::Language],
        ca_bundle: Option<&Path>,
    ) -> Result<Holder, String> {
        // No environment: the sprite's init must not carry the emulator's (token, paths).
        let mut cmd = tokio::process::Command::new(helper);
        cmd.env_clear().arg(HELPER_ARG);
        for l in languages {
            cmd.arg("--language").arg(l.helper_arg());
        }
        if let Some(b) = ca_bundle {
            cmd.arg("--ca-bundle").arg(b);
        }
        let mut child = cmd
            .arg("--root")
            .arg(root)
            .arg("--checkpoints")
            .arg(root.with_file_name("checkpoints"))
            .arg("--stage")
            .arg(stage)
            .arg("--hide")
            .arg(hide)
            .arg("--hostname")
            .arg(hostname)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the sandbox helper {}: {e}", helper.display()))?;
        let stdout = child.stdout.take().ok_or("helper stdout missing")?;
        let helper_pid = child.id().map(|p| p as i32);
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let mut r = std::io::BufReader::new(stdout.into_owned_fd().map(std::fs::File::from)?);
            r.read_line(&mut line)?;
            Ok::<_, std::io::Error>(line)
        })
        .await
        .map_err(|e| format!("helper reader: {e}"))?
        .map_err(|e| format!("reading the sandbox helper: {e}"))?;
        let line = line.trim();
        match line
            .strip_prefix("ready ")
            .and_then(|p| p.parse::<i32>().ok())
        {
            Some(init_pid) => Ok(Holder {
                child,
                init_pid,
                helper_pid,
                frozen: std::sync::Mutex::new(Vec::new()),
            }),
            None => {
                let _ = child.start_kill();
                Err(format!(
                    "sandbox setup failed: {}",
                    line.trim_start_matches("error ")
                ))
            }
        }
    }

    /// Kills every process of the sprite and waits for the helper to exit.
    pub async fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.init_pid), Signal::SIGKILL);
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        // The init is gone once its namespace's processes are reaped; wait a bounded time so the
        // sprite's mounts are released before a restore touches the disk.
        for _ in 0..200 {
            if !Path::new(&format!("/proc/{}", self.init_pid)).exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Stops every process of the sprite and waits (bounded) until the kernel reports them all
    /// stopped, re-signalling any that appeared meanwhile.
    pub async fn freeze(&self) {
        // Up to 5 s: a process in uninterruptible I/O stops only when the I/O completes.
        for _ in 0..1000 {
            let members = ns_members(self.init_pid);
            let running: Vec<i32> = members
                .iter()
                .copied()
                .filter(|p| proc_state(*p) != Some('T'))
                .collect();
            if running.is_empty() {
                return;
            }
            for pid in running {
                if kill(Pid::from_raw(pid), Signal::SIGSTOP).is_ok()
                    && let Ok(mut f) = self.frozen.lock()
                    && !f.contains(&pid)
                {
                    f.push(pid);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Continues the processes `freeze` stopped and waits (bounded) until they run again.
    pub async fn thaw(&self) {
        let frozen = self
            .frozen
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        for _ in 0..200 {
            let stopped: Vec<i32> = frozen
                .iter()
                .copied()
                .filter(|p| proc_state(*p) == Some('T'))
                .collect();
            if stopped.is_empty() {
                return;
            }
            for pid in stopped {
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
