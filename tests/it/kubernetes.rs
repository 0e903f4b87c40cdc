//! The Kubernetes layout for many orgs (issue 27): `kubectl kustomize packaging/kubernetes`
//! renders one StatefulSet per org with its own PVC, ConfigMap and Secret, and every object
//! is checked: names, volumes, secrets, probes, security context. Needs `kubectl` (Debian's
//! kubernetes-client; `tests/run` installs it). `KUBECTL` names another binary.

use std::collections::BTreeMap;
use std::process::Command;

const ORGS: [&str; 3] = ["acme", "globex", "initech"];

fn render() -> Vec<serde_json::Value> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = Command::new(&kubectl)
        .args([
            "kustomize",
            concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/kubernetes"),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("{kubectl}: {e}: install kubectl (Debian: apt-get install kubernetes-client)")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("\n---\n")
        .map(|doc| {
            let doc: String = doc
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            yaml_serde::from_str::<serde_json::Value>(&doc).unwrap()
        })
        .collect()
}

fn by_kind<'a>(objects: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn three_orgs_render_three_collectors_each_with_its_own_objects() {
    let objects = render();
    let kinds: BTreeMap<String, usize> = objects.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(
        kinds,
        [
            ("ConfigMap", 3),
            ("NetworkPolicy", 3),
            ("Secret", 3),
            ("StatefulSet", 3)
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect(),
        "one of each per org, nothing else"
    );
    let name = |o: &serde_json::Value| o["metadata"]["name"].as_str().unwrap().to_string();
    for org in ORGS {
        let label = |o: &serde_json::Value| o["metadata"]["labels"]["okta-collector/org"] == org;
        let set = by_kind(&objects, "StatefulSet")
            .into_iter()
            .find(|s| name(s) == format!("{org}-okta-collector"))
            .unwrap_or_else(|| panic!("no StatefulSet {org}-okta-collector"));
        assert!(label(set));
        let spec = &set["spec"];
        assert_eq!(spec["replicas"], 1, "one collector per spool");
        // The org's pods only: selector and template carry the org.
        assert_eq!(spec["selector"]["matchLabels"]["okta-collector/org"], org);
        let pod = &spec["template"]["spec"];
        assert_eq!(
            spec["template"]["metadata"]["labels"]["okta-collector/org"],
            org
        );
        // Security context.
        assert_eq!(pod["automountServiceAccountToken"], false);
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true);
        assert_eq!(psc["runAsUser"], 65532);
        assert_eq!(psc["fsGroup"], 65532);
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        // Probes on the metrics port the config listens on.
        assert_eq!(c["ports"][0]["containerPort"], 9464);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
        // Volumes: the org's own ConfigMap and Secret (generated, by hashed name), and its
        // own PVC from the claim template.
        let mounts: BTreeMap<String, String> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (name_of(m), m["mountPath"].as_str().unwrap().to_string()))
            .collect();
        let volume = |n: &str| {
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == n)
                .unwrap_or_else(|| panic!("{org}: no volume {n}"))
                .clone()
        };
        let cm_name = volume("config")["configMap"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let secret = volume("secrets");
        let secret_name = secret["secret"]["secretName"].as_str().unwrap().to_string();
        assert_eq!(secret["secret"]["defaultMode"], 0o400);
        assert!(
            cm_name.starts_with(&format!("{org}-okta-collector-config-")),
            "{cm_name}"
        );
        assert!(
            secret_name.starts_with(&format!("{org}-okta-collector-secrets-")),
            "{secret_name}"
        );
        assert_eq!(spec["volumeClaimTemplates"][0]["metadata"]["name"], "spool");
        assert!(mounts.contains_key("spool"));
        let cm = by_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|o| name(o) == cm_name)
            .unwrap_or_else(|| panic!("{org}: the ConfigMap {cm_name} is not rendered"));
        let s = by_kind(&objects, "Secret")
            .into_iter()
            .find(|o| name(o) == secret_name)
            .unwrap_or_else(|| panic!("{org}: the Secret {secret_name} is not rendered"));
        assert!(label(cm) && label(s));
        let mut keys: Vec<&str> = s["data"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["domain.key", "okta-api-token"]);
        // The config: this org's Okta, the files where the volumes put them, the spool on
        // the PVC, metrics on the probed port.
        let config: serde_json::Value =
            yaml_serde::from_str(cm["data"]["config.yaml"].as_str().unwrap()).unwrap();
        assert_eq!(
            config["inputs"]["okta"]["credentials"]["okta_url"],
            format!("https://{org}.okta.com")
        );
        let under = |path: &serde_json::Value, mount: &str| {
            path.as_str()
                .unwrap()
                .starts_with(&format!("{}/", mounts[mount]))
        };
        assert!(under(&config["globals"]["data_dir"], "spool"));
        assert!(under(
            &config["inputs"]["okta"]["credentials"]["api_token_file"],
            "secrets"
        ));
        let out = &config["outputs"]["devo"]["config"];
        assert!(under(&out["key"], "secrets"));
        assert!(under(&out["chain"], "config") && under(&out["cert"], "config"));
        assert!(cm["data"]["chain.crt"].is_string() && cm["data"]["domain.crt"].is_string());
        assert_eq!(config["globals"]["metrics_listen"], "0.0.0.0:9464");
        assert_eq!(config["globals"]["id"], format!("okta-{org}"));
        // The NetworkPolicy selects this org's pods.
        let np = by_kind(&objects, "NetworkPolicy")
            .into_iter()
            .find(|o| name(o) == format!("{org}-okta-collector"))
            .unwrap();
        assert_eq!(
            np["spec"]["podSelector"]["matchLabels"]["okta-collector/org"],
            org
        );
    }
}

fn name_of(v: &serde_json::Value) -> String {
    v["name"].as_str().unwrap().to_string()
}
