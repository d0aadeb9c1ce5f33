"""``serve --tls-cert/--tls-key``: our client and IBM's run Sampler jobs over HTTPS.

The certificate is self-signed for 127.0.0.1 and trusted through ``REQUESTS_CA_BUNDLE`` (how a
team trusts its own CA), never by turning verification off.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytest.importorskip("fastapi")


def _self_signed_with_cryptography(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _self_signed_with_openssl(cert: Path, key: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` for 127.0.0.1: with ``cryptography``, else the openssl binary."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl binary is available")
        _self_signed_with_openssl(cert, key)
    else:
        _self_signed_with_cryptography(cert, key)
    return cert, key


@pytest.fixture
def tls_server(server_factory, certificate, monkeypatch):
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trusted by this process and its children
    return server_factory.start(workers=1, args=["--tls-cert", str(cert), "--tls-key", str(key)])


def _bell():
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_our_client_and_the_official_one_over_https(tls_server, monkeypatch):
    assert tls_server.url.startswith("https://127.0.0.1:")
    assert any(
        "save_account(url='https://127.0.0.1:" in line for line in tls_server.extra["stdout"]
    )
    # plain HTTP to the TLS port is not served
    with pytest.raises(requests.RequestException):
        requests.get(tls_server.url.replace("https://", "http://") + "/health", timeout=10)
    # the certificate is really checked: without the CA bundle the handshake fails
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server.url + "/health", timeout=10, verify=requests.certs.where())
    # ... unless requests is told about it (the fixture set REQUESTS_CA_BUNDLE for sessions)
    assert requests.Session().get(tls_server.url + "/health", timeout=10).status_code == 200

    from qiskit_rest_provider import ProviderService, SamplerV2

    service = ProviderService(url=tls_server.url, token=tls_server.token)
    backend = service.backend("rest_simulator")
    counts = SamplerV2(mode=backend).run([_bell()], shots=200).result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 200 and set(counts) <= {"00", "11"}

    runtime = pytest.importorskip("qiskit_ibm_runtime")
    monkeypatch.setenv("QISKIT_FUNCTIONS_EXPERIMENTAL", "1")
    monkeypatch.setenv("IAM_URL", tls_server.url)
    official = runtime.QiskitRuntimeService(
        channel="ibm_quantum_platform",
        token=tls_server.token,
        instance=tls_server.instance_crn,
        url=tls_server.url,
        url_resolver=lambda url, instance, private, channel: f"{url}/api/v1",
    )
    ibm_backend = official.backend("rest_simulator")
    job = runtime.SamplerV2(mode=ibm_backend).run([_bell()], shots=100)
    counts = job.result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 100 and set(counts) <= {"00", "11"}


def test_cli_client_over_https(tls_server, tmp_path):
    env_home = tmp_path / "home"
    env_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_REST_")}
    env.update(HOME=str(env_home), QISKIT_REST_CONFIG_FILE=str(env_home / "a.json"))
    proc = subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "backends",
         "--url", tls_server.url, "--token", tls_server.token],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "rest_simulator" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "CERT"], "go together"),
        (["--tls-cert", "/no/such.pem", "--tls-key", "KEY"], "no such file"),
        (["--tls-cert", "KEY", "--tls-key", "KEY"], "cannot load"),
    ],
)
def test_bad_tls_arguments_are_refused(certificate, tmp_path, args, message):
    cert, key = certificate
    args = [str(cert) if a == "CERT" else str(key) if a == "KEY" else a for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "serve", "--port", "0",
         "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_plain_http_on_a_public_interface_warns(server_factory, certificate, monkeypatch):
    server = server_factory.start(workers=1, args=["--host", "0.0.0.0"])
    server_factory.stop(server)
    assert "without TLS" in server.log_text()
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    quiet = server_factory.start(workers=1)  # loopback: no warning
    server_factory.stop(quiet)
    assert "without TLS" not in quiet.log_text()
