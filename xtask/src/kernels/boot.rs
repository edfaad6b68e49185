//! One guest boot: virtiofsd sharing the cached root, QEMU (TCG) booting the kernel with the
//! initramfs, both under `nice` because the machine is shared, and both ended by PID.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// QEMU's Debian package ships the C virtiofsd here; neither test kernel has 9p.
const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";
/// The tag the guest's `/init` mounts.
const SHARE_TAG: &str = "rootfs";
/// Guest RAM. virtiofs needs it in a shared memfd, so it is also the backend's size.
const MEMORY_MIB: u32 = 1024;
const NICE: &str = "10";
/// The whole boot, from QEMU's start to its exit. A healthy run takes about a minute
/// under TCG; a hung guest is killed after this and its console shown.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Boot<'a> {
    pub vmlinuz: &'a Path,
    pub initramfs: &'a Path,
    pub share: &'a Path,
    /// Holds the virtiofsd socket and logs and the console log.
    pub run_dir: &'a Path,
}

pub struct Booted {
    pub status: ExitStatus,
    pub console: PathBuf,
    pub took: Duration,
}

impl Boot<'_> {
    /// Boots the guest and waits for it to power off (or for [`BOOT_TIMEOUT`]).
    pub fn run(&self) -> Result<Booted> {
        let socket = self.run_dir.join("virtiofsd.sock");
        let _ = std::fs::remove_file(&socket);
        let console = self.run_dir.join("console.log");

        let mut virtiofsd = Owned::spawn(
            "virtiofsd",
            Command::new("nice")
                .args(["-n", NICE, VIRTIOFSD])
                .arg(format!("--socket-path={}", socket.display()))
                .arg("-o")
                .arg(format!("source={}", self.share.display()))
                .args(["-o", "cache=auto"])
                .stdout(log_file(&self.run_dir.join("virtiofsd.log"))?)
                .stderr(log_file(&self.run_dir.join("virtiofsd.log"))?),
        )?;
        wait_for_socket(&socket, &mut virtiofsd)?;

        let started = Instant::now();
        let mut qemu = Owned::spawn("qemu", &mut self.qemu_command(&socket, &console))?;
        let status = qemu.wait_timeout(BOOT_TIMEOUT)?;
        let took = started.elapsed();

        // virtiofsd leaves by itself once QEMU hangs up; the signal covers a hang.
        virtiofsd.terminate();
        let Some(status) = status else {
            bail!(
                "the guest did not power off within {} s; killed QEMU (console: {})",
                BOOT_TIMEOUT.as_secs(),
                console.display()
            );
        };
        Ok(Booted {
            status,
            console,
            took,
        })
    }

    fn qemu_command(&self, socket: &Path, console: &Path) -> Command {
        let mut command = Command::new("nice");
        command
            .args(["-n", NICE, "qemu-system-x86_64"])
            // /dev/kvm here is a paravirtual device that cannot run these guests.
            .args(["-accel", "tcg", "-cpu", "max", "-smp", "1"])
            .args(["-m", &format!("{MEMORY_MIB}M")])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            // The guest's /init reboots when done; this turns the reboot into an exit.
            .arg("-no-reboot")
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-object")
            .arg(format!(
                "memory-backend-memfd,id=mem,size={MEMORY_MIB}M,share=on"
            ))
            .args(["-numa", "node,memdev=mem"])
            .arg("-chardev")
            .arg(format!("socket,id=fs,path={}", socket.display()))
            .arg("-device")
            .arg(format!("vhost-user-fs-pci,chardev=fs,tag={SHARE_TAG}"))
            .arg("-kernel")
            .arg(self.vmlinuz)
            .arg("-initrd")
            .arg(self.initramfs)
            // panic=-1 reboots (and so exits) at once on a panic instead of hanging.
            .args(["-append", "console=ttyS0 loglevel=4 panic=-1 rdinit=/init"])
            .stdin(Stdio::null());
        let shown: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        println!("$ {}", shown.join(" "));
        command
    }
}

/// A child this run started, ended by its own PID when dropped.
struct Owned {
    name: &'static str,
    child: Child,
}

impl Owned {
    fn spawn(name: &'static str, command: &mut Command) -> Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child })
    }

    fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited()? {
                return Ok(Some(status));
            }
            sleep(Duration::from_millis(200));
        }
        Ok(None)
    }

    /// SIGTERM, a few seconds' grace, then SIGKILL; always reaped.
    fn terminate(&mut self) {
        if matches!(self.exited(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !matches!(self.wait_timeout(Duration::from_secs(5)), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn log_file(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn wait_for_socket(socket: &Path, virtiofsd: &mut Owned) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if socket.exists() {
            return Ok(());
        }
        if let Some(status) = virtiofsd.exited()? {
            bail!("virtiofsd exited ({status}) before creating its socket");
        }
        sleep(Duration::from_millis(50));
    }
    bail!(
        "virtiofsd created no socket at {} within 10 s",
        socket.display()
    )
}
