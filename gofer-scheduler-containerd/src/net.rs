//! Networks: a container with the default network gets a network namespace of its own,
//! pinned under `/run/netns` (so it outlives the container's processes and is torn down
//! exactly once, with its address), wired to a bridge by the CNI plugin Debian ships
//! (`bridge` with `host-local` addresses, from `containernetworking-plugins`). Outbound
//! access is the bridge's, as Docker does it for its own: one masquerading rule for the
//! subnet and two rules that let its traffic past a `FORWARD` chain that Docker sets to
//! drop, added once when the scheduler connects (per-container rules, as CNI's
//! `ipMasq` and `firewall` make them, cost more iptables calls than the rest of a start).
//! A run's sandbox is such a namespace; its tasks join it and reach each other on
//! `127.0.0.1`. `NetworkMode::None` is a fresh namespace with only loopback (runc brings
//! it up).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use gofer_core::SchedulerError;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::config::ContainerdConfig;
use crate::NAME;

/// Where pinned network namespaces live (as `ip netns` keeps them).
const NETNS_DIR: &str = "/run/netns";

/// The label naming the network namespace a container owns.
pub(crate) const LABEL_NETNS: &str = "dev.gofer.containerd.netns";

/// The CNI network of one scheduler configuration.
#[derive(Debug, Clone)]
pub(crate) struct Cni {
    bin_dir: PathBuf,
    state: PathBuf,
    plugins: Vec<Value>,
}

fn net_error(message: String) -> SchedulerError {
    SchedulerError::engine(NAME, "network", message)
}

impl Cni {
    pub(crate) fn new(config: &ContainerdConfig) -> Self {
        let state = config.state_dir.join("cni");
        let name = format!("gofer-{}", config.namespace);
        let plugins = vec![json!({
            "cniVersion": "1.0.0", "name": name, "type": "bridge",
            "bridge": config.bridge, "isGateway": true, "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": config.subnet}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": state.join("ipam"),
            }
        })];
        Self {
            bin_dir: config.cni_bin_dir.clone(),
            state,
            plugins,
        }
    }

    /// Adds the subnet's outbound rules unless they are there: masquerading, and
    /// forwarding from it and back to it. A host without iptables gets a warning: its
    /// containers then reach the host and each other, not beyond.
    pub(crate) async fn host_rules(&self, subnet: &str) {
        let rules: [&[&str]; 3] = [
            &[
                "-t",
                "nat",
                "POSTROUTING",
                "-s",
                subnet,
                "!",
                "-d",
                subnet,
                "-j",
                "MASQUERADE",
            ],
            &["-t", "filter", "FORWARD", "-s", subnet, "-j", "ACCEPT"],
            &[
                "-t",
                "filter",
                "FORWARD",
                "-d",
                subnet,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        ];
        for rule in rules {
            let (table, rest) = rule.split_at(2);
            let (chain, spec) = rest.split_at(1);
            let check: Vec<&str> = table
                .iter()
                .chain(["-C"].iter())
                .chain(chain)
                .chain(spec)
                .copied()
                .collect();
            if run("iptables", &check).await.is_ok() {
                continue;
            }
            let insert: Vec<&str> = table
                .iter()
                .chain(["-I"].iter())
                .chain(chain)
                .chain(spec)
                .copied()
                .collect();
            if let Err(e) = run("iptables", &insert).await {
                tracing::warn!(error = %e, "containers on the bridge will have no outbound access");
            }
        }
    }

    /// The path of a pinned namespace.
    pub(crate) fn netns_path(name: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(name)
    }

    /// Makes the pinned namespace `netns` and wires it; returns its path. A namespace
    /// left by an earlier attempt under the same name is reused.
    pub(crate) async fn create(
        &self,
        netns: &str,
        container: &str,
    ) -> Result<PathBuf, SchedulerError> {
        let path = Self::netns_path(netns);
        if !path.exists() {
            run("ip", &["netns", "add", netns]).await?;
        }
        // A namespace made by `ip netns` has its loopback down (runc brings it up only
        // in namespaces it makes itself); peers of a sandbox meet on 127.0.0.1.
        if let Err(e) = run("ip", &["-n", netns, "link", "set", "lo", "up"]).await {
            let _ = self.remove(netns, container).await;
            return Err(e);
        }
        if let Err(e) = self.add(&path, container).await {
            let _ = self.remove(netns, container).await;
            return Err(e);
        }
        Ok(path)
    }

    /// Unwires and removes the namespace; what is already gone is not an error.
    pub(crate) async fn remove(&self, netns: &str, container: &str) -> Result<(), SchedulerError> {
        let path = Self::netns_path(netns);
        let saved = self.result_file(container);
        let prev: Option<Value> = std::fs::read(&saved)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut first_error = None;
        for plugin in self.plugins.iter().rev() {
            let mut conf = plugin.clone();
            if let Some(p) = &prev {
                conf["prevResult"] = p.clone();
            }
            if let Err(e) = self.exec("DEL", &conf, &path, container).await {
                first_error.get_or_insert(e);
            }
        }
        if path.exists() {
            if let Err(e) = run("ip", &["netns", "delete", netns]).await {
                first_error.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(saved);
        first_error.map_or(Ok(()), Err)
    }

    async fn add(&self, path: &Path, container: &str) -> Result<(), SchedulerError> {
        let mut prev: Option<Value> = None;
        for plugin in &self.plugins {
            let mut conf = plugin.clone();
            if let Some(p) = prev.take() {
                conf["prevResult"] = p;
            }
            let out = self.exec("ADD", &conf, path, container).await?;
            prev = Some(serde_json::from_slice(&out).map_err(|e| {
                net_error(format!(
                    "the CNI plugin {} answered no result: {e}",
                    conf["type"]
                ))
            })?);
        }
        if let Some(result) = prev {
            std::fs::create_dir_all(self.state.join("results"))
                .and_then(|()| std::fs::write(self.result_file(container), result.to_string()))
                .map_err(|e| net_error(format!("cannot keep the CNI result: {e}")))?;
        }
        Ok(())
    }

    fn result_file(&self, container: &str) -> PathBuf {
        self.state.join("results").join(format!("{container}.json"))
    }

    /// One CNI plugin call (the CNI protocol: the command in the environment, the
    /// configuration on stdin, the result or an error on stdout).
    async fn exec(
        &self,
        command: &str,
        conf: &Value,
        netns: &Path,
        container: &str,
    ) -> Result<Vec<u8>, SchedulerError> {
        let kind = conf["type"].as_str().unwrap_or_default().to_string();
        let mut child = tokio::process::Command::new(self.bin_dir.join(&kind))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.bin_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                net_error(format!(
                    "cannot run the CNI plugin {} (containernetworking-plugins): {e}",
                    self.bin_dir.join(&kind).display()
                ))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(conf.to_string().as_bytes())
                .await
                .map_err(|e| net_error(format!("CNI plugin {kind}: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| net_error(format!("CNI plugin {kind}: {e}")))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let msg = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                let m = v["msg"].as_str()?.to_string();
                Some(match v["details"].as_str() {
                    Some(d) if !d.is_empty() => format!("{m}: {d}"),
                    _ => m,
                })
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        Err(net_error(format!("CNI {command} with {kind}: {msg}")))
    }
}

/// Runs a host command, its failure an error with what it printed.
async fn run(program: &str, args: &[&str]) -> Result<(), SchedulerError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| net_error(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(net_error(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
