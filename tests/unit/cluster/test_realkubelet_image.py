"""The OCI archive the real-kubelet node imports into containerd: a valid image layout whose descriptors
match their blobs (what `ctr images import` checks), with /pause and /hello in its one layer."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from tests.cluster import realkubelet


def test_oci_archive_is_a_consistent_image_layout(tmp_path):
    binary = tmp_path / "tinyimage"
    binary.write_bytes(b"\x7fELF not really")
    archive = realkubelet.oci_archive(binary, realkubelet.IMAGE, tmp_path / "image.tar")
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}

    def blob(descriptor: dict) -> bytes:
        content = files["blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")]
        assert hashlib.sha256(content).hexdigest() == descriptor["digest"].removeprefix("sha256:")
        assert len(content) == descriptor["size"]
        return content

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == realkubelet.IMAGE
    manifest = json.loads(blob(entry))
    config = json.loads(blob(manifest["config"]))
    (layer_desc,) = manifest["layers"]
    layer = blob(layer_desc)
    assert config["rootfs"]["diff_ids"] == [layer_desc["digest"]]  # uncompressed: digest is the diff ID
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        pause, hello = tar.getmember("pause"), tar.getmember("hello")
        assert tar.extractfile(pause).read() == binary.read_bytes()
        assert pause.mode == 0o755
        assert hello.islnk() and hello.linkname == "pause"
