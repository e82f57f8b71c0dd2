"""Short-lived PKI for the local control plane, made with the openssl command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

APISERVER_SANS = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:10.0.0.1",
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ec_key(name: str, pki: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=pki
    )


def _signed_cert(name: str, subject: str, extensions: str, pki: Path) -> None:
    _ec_key(name, pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def generate(pki: Path) -> None:
    """CA, apiserver serving cert, admin client cert (system:masters) and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _ec_key("ca", pki)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=deepspeech-operator-test-ca", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    _signed_cert(
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={','.join(APISERVER_SANS)}\nextendedKeyUsage=serverAuth\n",
        pki,
    )
    _signed_cert("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\n", pki)
    # Serving cert of the node agent's kubelet endpoint (logs); the apiserver verifies it with the CA.
    _signed_cert(
        "kubelet", "/CN=node-agent", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", pki
    )
    # Client cert the apiserver presents to that endpoint, as it does to kubelets.
    _signed_cert(
        "apiserver-kubelet-client",
        "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client",
        "extendedKeyUsage=clientAuth\n",
        pki,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def node_certs(ca_dir: Path, out: Path, node: str, ips: tuple[str, ...]) -> None:
    """A real kubelet's client cert (system:nodes group) and serving cert, signed by the CA in `ca_dir`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ca.crt", "ca.key"):
        (out / name).symlink_to(ca_dir / name)
    _signed_cert(
        "node-client", f"/O=system:nodes/CN=system:node:{node}", "extendedKeyUsage=clientAuth\n", out
    )
    sans = ",".join([f"DNS:{node}", *(f"IP:{ip}" for ip in ips)])
    _signed_cert("node-serving", f"/CN={node}", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n", out)
