//! Runs what the Helm chart renders the way a kubelet would, without a
//! cluster: `helm template` gives the Deployments and Jobs; each container is
//! started from the built image's root filesystem with exactly its command,
//! arguments, environment, user and mounted ConfigMap, Secret and emptyDir
//! volumes, read-only root filesystem included. What differs from a node:
//! the network (host loopback instead of a pod network, so Services are
//! reached at their target ports) and the Secrets, which the test supplies
//! as the cluster would hold them.
//!
//! Needs root (mount namespaces, chroot), `helm` from `dev/helm-tools` and
//! the image from `dev/image`, both under the repository root.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize as _;
use serde_json::Value;

use crate::secure::repo_root;

/// The chart under test.
pub fn chart_dir() -> PathBuf {
    repo_root().join("helm/spanway")
}

/// `helm`, as `dev/helm-tools` installs it.
pub fn helm_bin() -> PathBuf {
    repo_root().join(".services/tools/bin/helm")
}

/// The OCI layout `dev/image` writes.
pub fn image_layout() -> PathBuf {
    repo_root().join("target/image/oci")
}

/// Skips nothing: fails with the command that provides what is missing.
pub fn require_tools() {
    assert!(
        helm_bin().is_file(),
        "{} is missing: run dev/helm-tools",
        helm_bin().display()
    );
    assert!(
        image_layout().join("index.json").is_file(),
        "{} is missing: run `dev/image --bin-dir target/debug --strip` after building the binaries",
        image_layout().display()
    );
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "running the rendered chart needs root (mount namespaces and chroot)"
    );
}

/// Every object `helm template` rendered, hooks included.
#[derive(Debug)]
pub struct Rendered {
    objects: Vec<Value>,
}

impl Rendered {
    /// `helm template RELEASE <chart> -f VALUES... --set K=V...` (helm types each value:
    /// no commas, and numbers become numbers).
    pub fn render(release: &str, values: &[PathBuf], sets: &[(&str, &str)]) -> Self {
        let mut command = Command::new(helm_bin());
        command.args(["template", release]).arg(chart_dir());
        for file in values {
            command.arg("-f").arg(file);
        }
        for (key, value) in sets {
            command.arg("--set").arg(format!("{key}={value}"));
        }
        let output = command.output().expect("run helm template");
        assert!(
            output.status.success(),
            "helm template failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self::parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// The objects of a multi-document YAML stream (empty documents left out).
    pub fn parse(text: &str) -> Self {
        let objects = serde_yaml::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).expect("rendered YAML parses"))
            .filter(|object| !object.is_null())
            .collect();
        Self { objects }
    }

    /// Objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_owned();
        self.objects
            .iter()
            .filter(move |o| o["kind"] == kind.as_str())
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the chart rendered no {kind} {name}"))
    }

    /// The workload (Deployment or Job) whose `app.kubernetes.io/component` is `component`.
    pub fn workload(&self, kind: &str, component: &str) -> &Value {
        self.of_kind(kind)
            .find(|o| o["metadata"]["labels"]["app.kubernetes.io/component"] == component)
            .unwrap_or_else(|| panic!("the chart rendered no {kind} for {component}"))
    }
}

/// The Secrets the cluster holds: name → key → content.
#[derive(Debug, Default, Clone)]
pub struct Secrets(BTreeMap<String, BTreeMap<String, Vec<u8>>>);

impl Secrets {
    /// Adds `key` to Secret `name`.
    pub fn with(mut self, name: &str, key: &str, content: impl Into<Vec<u8>>) -> Self {
        self.0
            .entry(name.to_owned())
            .or_default()
            .insert(key.to_owned(), content.into());
        self
    }

    fn get(&self, name: &str, key: &str) -> &[u8] {
        self.0
            .get(name)
            .and_then(|secret| secret.get(key))
            .unwrap_or_else(|| {
                panic!("the chart refers to Secret {name} key {key}, which the test does not hold")
            })
    }
}

/// The image unpacked once: its root filesystem and the runtime settings of its config.
#[derive(Debug)]
pub struct Image {
    bundle: tempfile::TempDir,
    /// `uid:gid` the image runs as when the pod does not say.
    user: (u32, u32),
    env: Vec<(String, String)>,
}

impl Image {
    /// `umoci unpack` of `layout:tag` (the tag defaults to the chart's appVersion).
    pub fn unpack(layout: &Path, tag: &str) -> Self {
        let bundle = tempfile::Builder::new()
            .prefix("spanway-image-")
            .tempdir()
            .expect("temp dir");
        let target = bundle.path().join("bundle");
        let output = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&target)
            .output()
            .expect("run umoci (apt-get install umoci)");
        assert!(
            output.status.success(),
            "umoci unpack failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config: Value = serde_json::from_slice(
            &std::fs::read(target.join("config.json")).expect("read the runtime config"),
        )
        .expect("runtime config is JSON");
        let process = &config["process"];
        let user = (
            process["user"]["uid"].as_u64().unwrap_or(0) as u32,
            process["user"]["gid"].as_u64().unwrap_or(0) as u32,
        );
        let env = process["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { bundle, user, env }
    }

    fn rootfs(&self) -> PathBuf {
        self.bundle.path().join("bundle/rootfs")
    }
}

/// The chart's appVersion, the image tag its default values name.
pub fn app_version() -> String {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("read Chart.yaml");
    let chart: Value = serde_yaml::from_str(&text).expect("Chart.yaml parses");
    chart["appVersion"]
        .as_str()
        .expect("Chart.yaml has an appVersion")
        .to_owned()
}

/// One running container of a rendered pod.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    child: Child,
    log: PathBuf,
    ports: BTreeMap<String, u16>,
    probes: Value,
    _volumes: tempfile::TempDir,
}

impl Pod {
    /// Starts the first container of `workload`'s pod template.
    pub fn start(image: &Image, rendered: &Rendered, workload: &Value, secrets: &Secrets) -> Self {
        let name = workload["metadata"]["name"]
            .as_str()
            .expect("workload name")
            .to_owned();
        let spec = &workload["spec"]["template"]["spec"];
        let container = &spec["containers"][0];
        let volumes_dir = tempfile::Builder::new()
            .prefix(&format!("pod-{name}-"))
            .tempdir()
            .expect("temp dir");
        let pod_security = &spec["securityContext"];
        let security = &container["securityContext"];
        let setting = |key: &str| {
            let own = &security[key];
            if own.is_null() {
                pod_security[key].clone()
            } else {
                own.clone()
            }
        };
        let uid = setting("runAsUser")
            .as_u64()
            .map_or(image.user.0, |v| v as u32);
        let gid = setting("runAsGroup")
            .as_u64()
            .map_or(image.user.1, |v| v as u32);
        if setting("runAsNonRoot").as_bool() == Some(true) {
            assert_ne!(uid, 0, "{name}: runAsNonRoot with user 0 would not start");
        }
        let fs_group = pod_security["fsGroup"].as_u64().map(|v| v as u32);
        let read_only_root = security["readOnlyRootFilesystem"].as_bool() == Some(true);

        // Volumes materialised on the host, as the kubelet writes them.
        let mut sources: BTreeMap<String, Volume> = BTreeMap::new();
        for volume in spec["volumes"].as_array().into_iter().flatten() {
            let volume_name = volume["name"].as_str().expect("volume name").to_owned();
            let dir = volumes_dir.path().join(&volume_name);
            let source = if let Some(config_map) = volume.get("configMap") {
                let object = rendered.get("ConfigMap", config_map["name"].as_str().expect("name"));
                let data: BTreeMap<String, Vec<u8>> = object["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().unwrap_or_default().as_bytes().to_vec(),
                        )
                    })
                    .collect();
                write_volume(
                    &dir,
                    &data,
                    &config_map["items"],
                    mode(&config_map["defaultMode"], 0o644),
                    fs_group,
                    |key| panic!("{name}: ConfigMap volume {volume_name} has no key {key}"),
                );
                Volume::Dir(dir)
            } else if let Some(secret) = volume.get("secret") {
                let secret_name = secret["secretName"].as_str().expect("secretName");
                let items = &secret["items"];
                let data: BTreeMap<String, Vec<u8>> = items
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| {
                        let key = item["key"].as_str().expect("item key");
                        (key.to_owned(), secrets.get(secret_name, key).to_vec())
                    })
                    .collect();
                assert!(
                    !data.is_empty(),
                    "{name}: Secret volume {volume_name} lists no items; the test supplies keys by item"
                );
                write_volume(
                    &dir,
                    &data,
                    items,
                    mode(&secret["defaultMode"], 0o644),
                    fs_group,
                    |key| panic!("{name}: Secret volume {volume_name} has no key {key}"),
                );
                Volume::Dir(dir)
            } else if volume.get("emptyDir").is_some() {
                Volume::EmptyDir
            } else {
                panic!(
                    "{name}: volume {volume_name} is of a kind this runner does not know: {volume}"
                );
            };
            sources.insert(volume_name, source);
        }

        // The mount script: runs in a private mount namespace, then becomes the container.
        let root = image.rootfs();
        let mut script = String::from("set -e\n");
        let _ = writeln!(script, "mount --bind {0} {0}", quote(&root));
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let volume_name = mount["name"].as_str().expect("mount name");
            let path = mount["mountPath"].as_str().expect("mountPath");
            let inside = root.join(path.trim_start_matches('/'));
            let read_only = mount["readOnly"].as_bool() == Some(true);
            let source = sources
                .get(volume_name)
                .unwrap_or_else(|| panic!("{name}: mount of undeclared volume {volume_name}"));
            match (source, mount["subPath"].as_str()) {
                (Volume::Dir(dir), Some(sub)) => {
                    let file = dir.join(sub);
                    assert!(
                        file.exists(),
                        "{name}: subPath {sub} of {volume_name} does not exist"
                    );
                    create_mount_point(&inside, file.is_dir());
                    let _ = writeln!(script, "mount --bind {} {}", quote(&file), quote(&inside));
                }
                (Volume::Dir(dir), None) => {
                    create_mount_point(&inside, true);
                    let _ = writeln!(script, "mount --bind {} {}", quote(dir), quote(&inside));
                }
                (Volume::EmptyDir, _) => {
                    create_mount_point(&inside, true);
                    let _ = writeln!(
                        script,
                        "mount -t tmpfs -o mode=1777,size=64m tmpfs {}",
                        quote(&inside)
                    );
                }
            }
            if read_only {
                let _ = writeln!(script, "mount -o remount,bind,ro {}", quote(&inside));
            }
        }
        if read_only_root {
            let _ = writeln!(script, "mount -o remount,bind,ro {}", quote(&root));
        }

        // The environment: the image's, the pod's hostname, then the container's own.
        let mut env: Vec<(String, String)> = image.env.clone();
        env.push(("HOSTNAME".into(), format!("{name}-0")));
        for var in container["env"].as_array().into_iter().flatten() {
            let key = var["name"].as_str().expect("env name").to_owned();
            let value = if let Some(value) = var["value"].as_str() {
                expand(value, &env)
            } else if let Some(secret) = var.pointer("/valueFrom/secretKeyRef") {
                let bytes = secrets.get(
                    secret["name"].as_str().expect("secret name"),
                    secret["key"].as_str().expect("secret key"),
                );
                String::from_utf8(bytes.to_vec()).expect("secret env values are text")
            } else if let Some(field) = var.pointer("/valueFrom/fieldRef/fieldPath") {
                match field.as_str() {
                    Some("metadata.name") => format!("{name}-0"),
                    Some("metadata.namespace") => "default".into(),
                    Some("status.podIP") | Some("status.hostIP") => "127.0.0.1".into(),
                    other => panic!("{name}: env {key} from field {other:?} is not known here"),
                }
            } else {
                panic!("{name}: env {key} has a source this runner does not know: {var}");
            };
            env.retain(|(k, _)| *k != key);
            env.push((key, value));
        }
        let mut argv: Vec<String> = Vec::new();
        for part in ["command", "args"] {
            for arg in container[part].as_array().into_iter().flatten() {
                argv.push(expand(arg.as_str().expect("string argument"), &env));
            }
        }
        assert!(
            !argv.is_empty(),
            "{name}: the container names no command (the image's default would run)"
        );

        // `env -i` leaves no PATH, so chroot is found first; inside, the image's PATH applies.
        script.push_str("chroot_bin=$(command -v chroot)\n");
        let mut exec = String::from("exec env -i");
        for (key, value) in &env {
            let _ = write!(exec, " {}", quote(Path::new(&format!("{key}={value}"))));
        }
        let _ = write!(exec, " \"$chroot_bin\" --userspec={uid}:{gid}");
        if let Some(group) = fs_group {
            let _ = write!(exec, " --groups={group}");
        }
        let _ = write!(exec, " {}", quote(&root));
        for arg in &argv {
            let _ = write!(exec, " {}", quote(Path::new(arg)));
        }
        script.push_str(&exec);
        script.push('\n');
        let script_path = volumes_dir.path().join("start.sh");
        std::fs::write(&script_path, &script).expect("write the start script");

        let log = volumes_dir.path().join("container.log");
        let log_file = std::fs::File::create(&log).expect("create the container log");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh"])
            .arg(&script_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .expect("run unshare");

        let ports = container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["name"].as_str()?.to_owned(),
                    p["containerPort"].as_u64()? as u16,
                ))
            })
            .collect();
        Self {
            name,
            child,
            log,
            ports,
            probes: container.clone(),
            _volumes: volumes_dir,
        }
    }

    /// The container port named `name`.
    pub fn port(&self, name: &str) -> u16 {
        *self
            .ports
            .get(name)
            .unwrap_or_else(|| panic!("{}: no container port named {name}", self.name))
    }

    /// What the container wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the container's `probe` (readinessProbe, livenessProbe) answers 200,
    /// as the kubelet asks it. Panics with the container's log when it does not by `timeout`.
    pub async fn wait_for_probe(&mut self, probe: &str, timeout: Duration) {
        let get = &self.probes[probe]["httpGet"];
        let path = get["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: {probe} is not an HTTP probe", self.name))
            .to_owned();
        let port = match &get["port"] {
            Value::String(name) => self.port(name),
            Value::Number(n) => n.as_u64().expect("port number") as u16,
            other => panic!("{}: {probe} port {other}", self.name),
        };
        let url = format!("http://127.0.0.1:{port}{path}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before its {probe} passed:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            let answer = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {probe} {url} did not pass within {timeout:?}; log:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the container to exit (a Job's) and returns whether it succeeded.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the container") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish within {timeout:?}; log:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, as a pod deletion sends it; returns whether the process exited cleanly
    /// within `grace` (it is killed otherwise).
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The Service port named `port` of Service `service`, resolved to the container port
/// (by name or number) that a pod selected by it listens on.
pub fn service_target_port(rendered: &Rendered, service: &str, port: &str, pod: &Pod) -> u16 {
    let object = rendered.get("Service", service);
    let entry = object["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == port)
        .unwrap_or_else(|| panic!("Service {service} has no port named {port}"));
    match &entry["targetPort"] {
        Value::String(name) => pod.port(name),
        Value::Number(n) => n.as_u64().expect("target port") as u16,
        Value::Null => entry["port"].as_u64().expect("port") as u16,
        other => panic!("Service {service} port {port}: targetPort {other}"),
    }
}

#[derive(Debug)]
enum Volume {
    Dir(PathBuf),
    EmptyDir,
}

/// A `defaultMode`, as the API server reads it (JSON integers are decimal).
fn mode(value: &Value, default: u32) -> u32 {
    value.as_u64().map_or(default, |v| v as u32)
}

/// Writes a ConfigMap or Secret volume: every key, or only `items` (key → path).
fn write_volume(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: &Value,
    mode: u32,
    fs_group: Option<u32>,
    missing: impl Fn(&str),
) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).expect("volume dir");
    let entries: Vec<(String, String)> = match items.as_array() {
        Some(items) => items
            .iter()
            .map(|item| {
                (
                    item["key"].as_str().expect("item key").to_owned(),
                    item["path"].as_str().expect("item path").to_owned(),
                )
            })
            .collect(),
        None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
    };
    for (key, path) in entries {
        let Some(content) = data.get(&key) else {
            missing(&key);
            continue;
        };
        let file = dir.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("volume subdir");
        }
        std::fs::write(&file, content).expect("write volume file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if let Some(group) = fs_group {
            std::os::unix::fs::chown(&file, Some(0), Some(group)).expect("chown to fsGroup");
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    if let Some(group) = fs_group {
        std::os::unix::fs::chown(dir, Some(0), Some(group)).expect("chown dir to fsGroup");
    }
}

/// Creates the file or directory a volume is mounted on, as the container runtime does.
fn create_mount_point(path: &Path, dir: bool) {
    if dir {
        std::fs::create_dir_all(path).expect("mount point dir");
    } else {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mount point parent");
        }
        if !path.exists() {
            std::fs::write(path, b"").expect("mount point file");
        }
    }
}

/// `$(VAR)` references expanded from earlier variables, as Kubernetes does for env and args.
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match env.iter().rev().find(|(k, _)| k == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Single-quoted for sh.
fn quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_from_earlier_ones_and_unknown_stay() {
        let env = vec![
            ("A".to_owned(), "x".to_owned()),
            ("B".to_owned(), "y".to_owned()),
        ];
        assert_eq!(expand("$(A)-$(B)/$(C)", &env), "x-y/$(C)");
        assert_eq!(expand("plain $(", &env), "plain $(");
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote(Path::new("it's")), "'it'\\''s'");
    }

    #[test]
    fn rendered_stream_skips_empty_documents() {
        let rendered = Rendered::parse(
            "---\n# only a comment\n---\nkind: ConfigMap\nmetadata: {name: a}\n---\n",
        );
        assert_eq!(rendered.of_kind("ConfigMap").count(), 1);
        assert_eq!(rendered.get("ConfigMap", "a")["metadata"]["name"], "a");
    }
}
