#!/usr/bin/env python3
"""Tests of Latchkey's Helm chart (deploy/helm/latchkey), with no cluster and no helm binary.

The Helm v4 SDK (PyPI `helm-python-sdk`) lints the chart strictly and renders it offline, the
way `helm lint --strict` and `helm template` would; `kubernetes-validate` checks every rendered
object against the Kubernetes OpenAPI schemas (strict: unknown fields fail) of the oldest
Kubernetes the chart supports and of the newest the package knows. Then each value set's key
facts are asserted: security context, probes, replicas, secrets as environment, hooks, the
clients file. Bad values must fail: replicas on the embedded store (the chart's `fail`) and
values that break values.schema.json.

Run: python3 deploy/tests/test_chart.py  (or deploy/tests/run.sh; `cargo test helm` runs it too).
Packages: deploy/tests/requirements.txt (installed by .ci/run).
"""

import base64
import copy
import sys
import tomllib
import unittest
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "latchkey"
VALUES = Path(__file__).resolve().parent / "values"
RELEASE, NAMESPACE = "latchkey", "identity"
# The chart's kubeVersion floor, and the newest schemas the validator ships.
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Custom resources: no schema in kubernetes-validate; their shape is asserted below instead.
CUSTOM_KINDS = {"ServiceMonitor"}
HOOK_PHASES = "pre-install,pre-upgrade"
# Limits the binary has defaults for: chart value (under config) -> variable, set only when given.
LIMITS = {
    "headerReadTimeout": "LATCHKEY_HEADER_READ_TIMEOUT",
    "loginTransactionsPerIp": "LATCHKEY_LOGIN_TRANSACTIONS_PER_IP",
    "memoryStoreMaxEntries": "LATCHKEY_MEMORY_STORE_MAX_ENTRIES",
}


def values_file(name):
    return yaml.safe_load((VALUES / f"{name}.yaml").read_text())


def merged(base, override):
    """`base` with `override` merged in, dictionaries recursively (like a second -f file)."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


class Rendered:
    """The objects one render produced, by kind and name, plus NOTES.txt."""

    def __init__(self, values):
        with helm.Chart.load(CHART) as chart:
            files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        self.notes = ""
        self.objects = []
        self.text = ""
        for path, text in sorted(files.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            self.text += text
            self.objects += [doc for doc in yaml.safe_load_all(text) if doc]

    def kinds(self):
        return sorted({o["kind"] for o in self.objects})

    def all(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind, name=None):
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def deployment(self):
        return self.one("Deployment", RELEASE)

    def container(self):
        (container,) = self.deployment()["spec"]["template"]["spec"]["containers"]
        return container

    def env(self):
        """The container's environment: {name: EnvVar} (the ConfigMap's part is separate)."""
        return {e["name"]: e for e in self.container().get("env", [])}

    def config(self):
        return self.one("ConfigMap", RELEASE)["data"]

    def mounts(self):
        return {m["mountPath"]: m for m in self.container()["volumeMounts"]}

    def volumes(self):
        return {v["name"]: v for v in self.deployment()["spec"]["template"]["spec"]["volumes"]}


def secret_data(secret):
    """A Secret's decoded data."""
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def render_error(values):
    """The error message of a render that must fail."""
    try:
        Rendered(values)
    except helm.HelmError as err:
        return str(err)
    raise AssertionError(f"rendering {values} succeeded; it must fail")


class ChartTestCase(unittest.TestCase):
    maxDiff = None

    def assert_valid_objects(self, rendered):
        """Every object is valid against the strict Kubernetes schemas and sits in the namespace."""
        self.assertTrue(rendered.objects)
        for obj in rendered.objects:
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            self.assertEqual(obj["metadata"].get("namespace"), NAMESPACE, where)
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    self.assertIn(obj["kind"], CUSTOM_KINDS, f"{where}: no schema for Kubernetes {version}")
                except kubernetes_validate.ValidationError as err:
                    path = ".".join(str(p) for p in err.path)
                    self.fail(f"{where} is invalid for Kubernetes {version}: {path}: {err.message}")
        names = [(o["kind"], o["metadata"]["name"]) for o in rendered.objects]
        self.assertEqual(len(names), len(set(names)), "two objects share a kind and name")

    def assert_hardened(self, pod_spec, container):
        pod = pod_spec["securityContext"]
        self.assertIs(pod["runAsNonRoot"], True)
        self.assertEqual(pod["runAsUser"], 10001)
        self.assertEqual(pod["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertIs(pod_spec["automountServiceAccountToken"], False)
        ctx = container["securityContext"]
        self.assertIs(ctx["runAsNonRoot"], True)
        self.assertIs(ctx["allowPrivilegeEscalation"], False)
        self.assertIs(ctx["readOnlyRootFilesystem"], True)
        self.assertEqual(ctx["capabilities"], {"drop": ["ALL"]})

    def assert_from_secret(self, rendered, variable, secret, key, optional=None):
        ref = rendered.env()[variable]["valueFrom"]["secretKeyRef"]
        self.assertEqual((ref["name"], ref["key"]), (secret, key), variable)
        self.assertEqual(ref.get("optional"), optional, variable)
        self.assertNotIn(variable, rendered.config(), f"{variable} must not also be in the ConfigMap")


class Lint(ChartTestCase):
    def test_lint_strict_with_every_value_set(self):
        for name in [None, "scaled-out", "existing-secrets", "clients"]:
            with self.subTest(values=name or "defaults"):
                report = helm.lint(
                    CHART, values_file(name) if name else None, strict=True, kube_version="v1.30.0"
                )
                problems = [m for m in report["messages"] if m["severity"] >= 2]
                self.assertEqual((report["errors"], problems), ([], []), report)
                self.assertEqual(report["total_charts_linted"], 1)

    def test_app_version_is_the_crate_version(self):
        cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
        with helm.Chart.load(CHART) as chart:
            self.assertEqual(chart.metadata["appVersion"], cargo["workspace"]["package"]["version"])
            self.assertEqual(chart.metadata["apiVersion"], "v2")

    def test_lint_reports_schema_violations(self):
        report = helm.lint(CHART, {"replicaCount": "three"}, strict=True)
        self.assertTrue(any("/replicaCount" in e for e in report["errors"]), report)


class Defaults(ChartTestCase):
    """No values at all: one replica on the embedded store, ready for a port-forward trial."""

    @classmethod
    def setUpClass(cls):
        cls.r = Rendered(None)

    def test_objects_are_valid(self):
        self.assert_valid_objects(self.r)
        self.assertEqual(self.r.kinds(), ["ConfigMap", "Deployment", "Service", "ServiceAccount"])

    def test_one_replica_replaced_not_rolled(self):
        spec = self.r.deployment()["spec"]
        self.assertEqual(spec["replicas"], 1)
        self.assertEqual(spec["strategy"], {"type": "Recreate"})

    def test_hardened_pod(self):
        pod = self.r.deployment()["spec"]["template"]["spec"]
        self.assert_hardened(pod, self.r.container())
        self.assertEqual(pod["serviceAccountName"], RELEASE)
        self.assertEqual(self.r.container()["image"], "latchkey:0.1.0")
        self.assertEqual(self.r.container()["args"], ["serve"])

    def test_probes(self):
        c = self.r.container()
        self.assertEqual(c["ports"], [{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})
        self.assertEqual(c["startupProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        self.assertEqual(c["lifecycle"]["preStop"], {"sleep": {"seconds": 5}})

    def test_sqlite_in_a_writable_data_volume(self):
        config = self.r.config()
        self.assertEqual(config["LATCHKEY_DATABASE_URL"], "sqlite:///data/latchkey.db?mode=rwc")
        self.assertEqual(config["LATCHKEY_LISTEN"], "0.0.0.0:8080")
        self.assertEqual(config["LATCHKEY_ISSUER"], "http://localhost:8080")
        self.assertNotIn("LATCHKEY_REDIS_URL", config)
        self.assertEqual(self.r.env(), {}, "no secrets in the embedded default")
        volumes, mounts = self.r.volumes(), self.r.mounts()
        self.assertEqual(mounts["/data"]["name"], "data")
        self.assertEqual(volumes["data"], {"name": "data", "emptyDir": {}})
        self.assertIn("emptyDir", volumes[mounts["/tmp"]["name"]])

    def test_limits_left_to_latchkey(self):
        # Null values set no variable, so the binary's own defaults apply.
        for variable in LIMITS.values():
            self.assertNotIn(variable, self.r.config())
            self.assertNotIn(variable, self.r.env())

    def test_each_limit_sets_its_variable(self):
        # Whole numbers stay whole: a million must not become 1e+06.
        cases = {
            "headerReadTimeout": ("1m 30s", "1m 30s"),
            "loginTransactionsPerIp": (1000000, "1000000"),
            "memoryStoreMaxEntries": (2500000, "2500000"),
        }
        for key, (value, text) in cases.items():
            with self.subTest(key=key):
                config = Rendered({"config": {key: value}}).config()
                self.assertEqual({v: config[v] for v in LIMITS.values() if v in config}, {LIMITS[key]: text})

    def test_pod_annotations(self):
        annotations = self.r.deployment()["spec"]["template"]["metadata"]["annotations"]
        for name in ["checksum/config", "checksum/secret", "checksum/clients"]:
            self.assertRegex(annotations[name], r"^[0-9a-f]{64}$")
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], "8080")
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")

    def test_service_selects_the_pods(self):
        service = self.r.one("Service", RELEASE)
        selector = self.r.deployment()["spec"]["selector"]["matchLabels"]
        self.assertEqual(service["spec"]["selector"], selector)
        self.assertLessEqual(selector.items(), self.r.deployment()["spec"]["template"]["metadata"]["labels"].items())
        self.assertEqual(service["spec"]["ports"][0]["targetPort"], "http")

    def test_notes_tell_the_issuer_and_the_first_user(self):
        notes = self.r.notes
        self.assertIn("Issuer: http://localhost:8080", notes)
        self.assertIn(f"port-forward service/{RELEASE} 8080:80", notes)
        self.assertIn(f"exec deploy/{RELEASE} -- latchkey user create --username", notes)
        self.assertIn(f"exec deploy/{RELEASE} -- latchkey user enroll-link admin", notes)
        self.assertIn("WARNING: /data is an emptyDir", notes)


class ScaledOut(ChartTestCase):
    """Three replicas on PostgreSQL and Redis behind an Ingress (values/scaled-out.yaml)."""

    @classmethod
    def setUpClass(cls):
        cls.values = values_file("scaled-out")
        cls.r = Rendered(cls.values)

    def test_objects_are_valid(self):
        self.assert_valid_objects(self.r)
        self.assertEqual(
            self.r.kinds(),
            ["ConfigMap", "Deployment", "Ingress", "Job", "PodDisruptionBudget", "Secret", "Service",
             "ServiceAccount", "ServiceMonitor"],
        )

    def test_three_replicas_rolled_without_downtime(self):
        spec = self.r.deployment()["spec"]
        self.assertEqual(spec["replicas"], 3)
        rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        self.assertEqual(spec["strategy"], rolling)
        self.assert_hardened(spec["template"]["spec"], self.r.container())
        spread = spec["template"]["spec"]["topologySpreadConstraints"]
        self.assertEqual(spread[0]["topologyKey"], "kubernetes.io/hostname")
        pdb = self.r.one("PodDisruptionBudget", RELEASE)["spec"]
        self.assertEqual(pdb["maxUnavailable"], 1)
        self.assertEqual(pdb["selector"]["matchLabels"], spec["selector"]["matchLabels"])

    def test_credentials_come_from_the_secret(self):
        secret = secret_data(self.r.one("Secret", RELEASE))
        self.assertEqual(
            secret,
            {
                "database-url": self.values["database"]["url"],
                "redis-url": self.values["redis"]["url"],
                "admin-token": self.values["adminToken"],
                "smtp-url": self.values["smtp"]["url"],
            },
        )
        for variable, key in [
            ("LATCHKEY_DATABASE_URL", "database-url"),
            ("LATCHKEY_REDIS_URL", "redis-url"),
            ("LATCHKEY_ADMIN_TOKEN", "admin-token"),
            ("LATCHKEY_SMTP_URL", "smtp-url"),
        ]:
            self.assert_from_secret(self.r, variable, RELEASE, key)
        # The credentials appear in Secrets only, never in the ConfigMap, Deployment or Job.
        for obj in self.r.objects:
            if obj["kind"] != "Secret":
                text = yaml.safe_dump(obj)
                for credential in ["pg-password-0f3a", "redis-password-77c1", "admin-token-5b0c", "smtp-password-a9d2"]:
                    self.assertNotIn(credential, text, f"{obj['kind']}/{obj['metadata']['name']}")

    def test_settings_in_the_config_map(self):
        config = self.r.config()
        self.assertEqual(config["LATCHKEY_ISSUER"], "https://id.example.com")
        self.assertEqual(config["LATCHKEY_REDIS_PREFIX"], "id-prod:")
        self.assertEqual(config["LATCHKEY_SIGNUP"], "closed")
        self.assertEqual(config["LATCHKEY_MAIL_FROM"], "Example ID <id@example.com>")
        self.assertEqual(config["LATCHKEY_SESSION_MAX_AGE"], "14d")
        self.assertEqual(config["LATCHKEY_RATE_LIMITS"], "on")
        self.assertEqual(config["LATCHKEY_HEADER_READ_TIMEOUT"], "5s")
        self.assertEqual(config["LATCHKEY_LOGIN_TRANSACTIONS_PER_IP"], "600")
        self.assertNotIn("LATCHKEY_MEMORY_STORE_MAX_ENTRIES", config)
        self.assertNotIn("LATCHKEY_DATABASE_URL", config)
        self.assertEqual(self.r.container()["envFrom"], [{"configMapRef": {"name": RELEASE}}])

    def test_memory_store_cap_ignored_with_redis(self):
        r = Rendered(merged(self.values, {"config": {"memoryStoreMaxEntries": 50000}}))
        self.assertNotIn("LATCHKEY_MEMORY_STORE_MAX_ENTRIES", r.config())

    def test_quotes_and_backslashes_survive(self):
        url = 'postgres://latchkey:p"a\\ss:w0rd@db:5432/latchkey'
        sender = '"Example \\ ID" <id@example.com>'
        config = {"mailFrom": sender, "extra": {"X_N": 5}}
        r = Rendered(merged(self.values, {"database": {"url": url}, "config": config}))
        self.assertEqual(secret_data(r.one("Secret", RELEASE))["database-url"], url)
        self.assertEqual(secret_data(r.one("Secret", f"{RELEASE}-migrate"))["database-url"], url)
        self.assertEqual(r.config()["LATCHKEY_MAIL_FROM"], sender)
        self.assertEqual(r.config()["X_N"], "5")

    def test_migration_job_is_a_hook_before_install_and_upgrade(self):
        job = self.r.one("Job", f"{RELEASE}-migrate")
        annotations = job["metadata"]["annotations"]
        self.assertEqual(annotations["helm.sh/hook"], HOOK_PHASES)
        self.assertEqual(annotations["helm.sh/hook-delete-policy"], "before-hook-creation,hook-succeeded")
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        self.assertEqual(container["args"], ["migrate"])
        self.assertEqual(container["image"], "registry.example.com/platform/latchkey:0.1.0")
        self.assertEqual(pod["restartPolicy"], "Never")
        self.assert_hardened(pod, container)
        # Hooks run before the release's Secret exists: the Job reads a hook Secret created
        # just before it (lower weight).
        ref = {e["name"]: e for e in container["env"]}["LATCHKEY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        hook_secret = self.r.one("Secret", ref["name"])
        self.assertEqual(secret_data(hook_secret)[ref["key"]], self.values["database"]["url"])
        self.assertEqual(hook_secret["metadata"]["annotations"]["helm.sh/hook"], HOOK_PHASES)
        weight = lambda o: int(o["metadata"]["annotations"]["helm.sh/hook-weight"])  # noqa: E731
        self.assertLess(weight(hook_secret), weight(job))
        # The Job's pod must never count as a server pod (Service endpoints, budget).
        selector = self.r.deployment()["spec"]["selector"]["matchLabels"]
        self.assertFalse(selector.items() <= job["spec"]["template"]["metadata"]["labels"].items())

    def test_ingress_for_the_issuer_host(self):
        ingress = self.r.one("Ingress", RELEASE)["spec"]
        self.assertEqual(ingress["ingressClassName"], "nginx")
        self.assertEqual(ingress["tls"], [{"hosts": ["id.example.com"], "secretName": "id-example-com-tls"}])
        (rule,) = ingress["rules"]
        self.assertEqual(rule["host"], "id.example.com")
        backend = rule["http"]["paths"][0]["backend"]["service"]
        self.assertEqual(backend, {"name": RELEASE, "port": {"name": "http"}})

    def test_service_monitor(self):
        monitor = self.r.one("ServiceMonitor", RELEASE)
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "prometheus")
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "http")
        self.assertEqual(monitor["spec"]["endpoints"][0]["path"], "/metrics")
        service_labels = self.r.one("Service", RELEASE)["metadata"]["labels"]
        self.assertLessEqual(monitor["spec"]["selector"]["matchLabels"].items(), service_labels.items())

    def test_changed_settings_roll_the_pods(self):
        def checksums(values):
            return Rendered(values).deployment()["spec"]["template"]["metadata"]["annotations"]

        before = checksums(self.values)
        token = checksums(merged(self.values, {"adminToken": "another-admin-token-0123456789abcdef"}))
        self.assertNotEqual(before["checksum/secret"], token["checksum/secret"])
        self.assertEqual(before["checksum/config"], token["checksum/config"])
        signup = checksums(merged(self.values, {"config": {"signup": "open"}}))
        self.assertNotEqual(before["checksum/config"], signup["checksum/config"])

    def test_autoscaled(self):
        r = Rendered(merged(self.values, {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 10}}))
        self.assert_valid_objects(r)
        self.assertNotIn("replicas", r.deployment()["spec"], "the autoscaler owns the replica count")
        hpa = r.one("HorizontalPodAutoscaler", RELEASE)["spec"]
        self.assertEqual((hpa["minReplicas"], hpa["maxReplicas"]), (3, 10))
        self.assertEqual(hpa["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": RELEASE})
        self.assertIn("PodDisruptionBudget", r.kinds())

    def test_notes(self):
        self.assertIn("Issuer: https://id.example.com", self.r.notes)
        self.assertIn("Served through the Ingress latchkey for host id.example.com", self.r.notes)
        self.assertIn("latchkey user enroll-link admin", self.r.notes)
        self.assertIn("3 replica(s)", self.r.notes)


class ExistingSecrets(ChartTestCase):
    """Credentials and the clients file in Secrets the operator manages (values/existing-secrets.yaml)."""

    @classmethod
    def setUpClass(cls):
        cls.r = Rendered(values_file("existing-secrets"))

    def test_objects_are_valid(self):
        self.assert_valid_objects(self.r)
        self.assertEqual(self.r.all("Secret"), [], "the chart renders no Secret of its own")
        self.assertNotIn("ServiceAccount", self.r.kinds())
        self.assertEqual(self.r.deployment()["spec"]["template"]["spec"]["serviceAccountName"], "identity")

    def test_env_from_the_existing_secret(self):
        secret = "latchkey-credentials"
        self.assert_from_secret(self.r, "LATCHKEY_DATABASE_URL", secret, "DATABASE_URL")
        self.assert_from_secret(self.r, "LATCHKEY_REDIS_URL", secret, "REDIS_URL")
        # The admin API and SMTP stay off when the Secret has no such key.
        self.assert_from_secret(self.r, "LATCHKEY_ADMIN_TOKEN", secret, "ADMIN_TOKEN", optional=True)
        self.assert_from_secret(self.r, "LATCHKEY_SMTP_URL", secret, "SMTP_URL", optional=True)
        self.assertEqual(
            self.r.env()["LATCHKEY_MAIL_FROM"]["valueFrom"]["secretKeyRef"], {"name": secret, "key": "MAIL_FROM"}
        )
        self.assertEqual(self.r.deployment()["spec"]["replicas"], 2)

    def test_migration_job_reads_the_existing_secret(self):
        job = self.r.one("Job", f"{RELEASE}-migrate")
        self.assertEqual(job["metadata"]["annotations"]["helm.sh/hook"], HOOK_PHASES)
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        ref = env["LATCHKEY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        self.assertEqual(ref, {"name": "latchkey-credentials", "key": "DATABASE_URL"})

    def test_clients_file_from_the_existing_secret(self):
        self.assertEqual(self.r.volumes()["clients"]["secret"]["secretName"], "latchkey-clients-file")
        self.assertEqual(self.r.config()["LATCHKEY_CLIENTS_FILE"], "/etc/latchkey/clients.yaml")


class DeclarativeClients(ChartTestCase):
    """Clients from values, one replica on SQLite with a persistent volume (values/clients.yaml)."""

    @classmethod
    def setUpClass(cls):
        cls.values = values_file("clients")
        cls.r = Rendered(cls.values)

    def test_objects_are_valid(self):
        self.assert_valid_objects(self.r)
        self.assertEqual(
            self.r.kinds(), ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service", "ServiceAccount"]
        )
        self.assertNotIn("Job", self.r.kinds(), "no migration hook on the embedded store")

    def test_clients_file_mounted(self):
        secret = self.r.one("Secret", f"{RELEASE}-clients")
        self.assertEqual(yaml.safe_load(secret_data(secret)["clients.yaml"]), {"clients": self.values["clients"]})
        path = self.r.config()["LATCHKEY_CLIENTS_FILE"]
        self.assertEqual(path, "/etc/latchkey/clients.yaml")
        mount = self.r.mounts()["/etc/latchkey"]
        self.assertIs(mount["readOnly"], True)
        volume = self.r.volumes()[mount["name"]]["secret"]
        self.assertEqual(volume["secretName"], f"{RELEASE}-clients")
        self.assertEqual(volume["items"], [{"key": "clients.yaml", "path": "clients.yaml"}])

    def test_changed_clients_roll_the_pods(self):
        before = self.r.deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/clients"]
        changed = copy.deepcopy(self.values)
        changed["clients"][0]["redirect_uris"].append("https://wiki.example.org/other-callback")
        after = Rendered(changed).deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/clients"]
        self.assertNotEqual(before, after)

    def test_sqlite_on_a_kept_volume(self):
        pvc = self.r.one("PersistentVolumeClaim", f"{RELEASE}-data")
        self.assertEqual(pvc["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "2Gi")
        self.assertEqual(self.r.volumes()["data"]["persistentVolumeClaim"], {"claimName": f"{RELEASE}-data"})
        self.assertEqual(self.r.deployment()["spec"]["strategy"], {"type": "Recreate"})
        self.assertEqual(self.r.deployment()["spec"]["replicas"], 1)
        self.assertNotIn("WARNING", self.r.notes)


class BadValues(ChartTestCase):
    """Values that must stop the install with a message, not produce a broken release."""

    ONE_REPLICA = "the embedded default (SQLite and in-process state) supports exactly one replica"

    def test_replicas_need_postgres_and_redis(self):
        # Install, upgrade and template stop here; `helm lint` runs templates in lint mode,
        # where `fail` only logs, so this render is what catches it.
        message = render_error({"replicaCount": 3})
        self.assertIn("replicaCount=3 needs an external PostgreSQL and Redis", message)
        self.assertIn(self.ONE_REPLICA, message)
        # PostgreSQL alone is not enough: in-process state is per pod.
        postgres_only = {"replicaCount": 3, "database": {"type": "postgres", "url": "postgres://db/latchkey"}}
        self.assertIn(self.ONE_REPLICA, render_error(postgres_only))
        self.assertIn(self.ONE_REPLICA, render_error({"autoscaling": {"enabled": True}}))

    def test_external_stores_need_their_urls(self):
        self.assertIn("needs database.url", render_error({"database": {"type": "postgres"}}))
        self.assertIn("needs redis.url", render_error({"redis": {"enabled": True}}))
        both = {"existingSecret": "creds", "adminToken": "x" * 32}
        self.assertIn("existingSecret is set", render_error(both))

    def test_schema_rejects_bad_values(self):
        cases = {
            "/replicaCount": [{"replicaCount": "three"}, {"replicaCount": 0}],
            "/issuer": [
                {"issuer": "http://id.example.com"},  # http is for localhost only (WebAuthn)
                {"issuer": "https://id.example.com/"},  # no trailing slash
                {"issuer": "id.example.com"},
            ],
            "/adminToken": [{"adminToken": "too-short"}],
            "/database/type": [{"database": {"type": "mysql"}}],
            "/database/url": [{"database": {"type": "postgres", "url": "mysql://db"}}],
            "/config/signup": [{"config": {"signup": "maybe"}}],
            "/config/headerReadTimeout": [
                {"config": {"headerReadTimeout": 10}},  # a duration needs its unit: 10s
                {"config": {"headerReadTimeout": "soon"}},
            ],
            "/config/loginTransactionsPerIp": [
                {"config": {"loginTransactionsPerIp": 0}},
                {"config": {"loginTransactionsPerIp": "300"}},
            ],
            "/config/memoryStoreMaxEntries": [{"config": {"memoryStoreMaxEntries": 2000000000}}],
            "NOT-A-VARIABLE": [{"config": {"extra": {"NOT-A-VARIABLE": "x"}}}],  # names the bad key
            "/existingSecretKeys/databaseUrl": [{"existingSecretKeys": {"databaseUrl": "database url"}}],
            "/clients/0": [{"clients": [{"client_id": "a", "name": "A", "redirect_uri": ["https://a/cb"]}]}],
            "/clients/0/client_secret": [
                {"clients": [{"client_id": "a", "name": "A", "redirect_uris": ["https://a/cb"], "client_secret": "x"}]}
            ],
            "replicas": [{"replicas": 3}],  # a typo of replicaCount
        }
        for where, value_sets in cases.items():
            for values in value_sets:
                with self.subTest(values=values):
                    message = render_error(values)
                    self.assertIn("don't meet the specifications of the schema", message)
                    self.assertIn(where, message)

    def test_schema_accepts_good_issuers(self):
        issuers = ["https://id.example.com", "https://example.com:8443/idp", "http://localhost:8080",
                   "http://127.0.0.1"]
        for issuer in issuers:
            with self.subTest(issuer=issuer):
                self.assertEqual(Rendered({"issuer": issuer}).config()["LATCHKEY_ISSUER"], issuer)


if __name__ == "__main__":
    print(f"helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.__version__}, "
          f"Kubernetes schemas {', '.join(KUBE_VERSIONS)}", flush=True)
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
