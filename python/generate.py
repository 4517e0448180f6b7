#!/usr/bin/python3
"""Builds the importable sergas_client package from the repository's protos, offline, with Debian's tools.

    /usr/bin/python3 python/generate.py [--out DIR]      (DIR defaults to python/build)

DIR/sergas_client/ receives the hand-written helpers (copied from python/sergas_client) and, under
_gen/, the generated stubs; `PYTHONPATH=DIR` makes `import sergas_client` work. Nothing generated is
committed: the stubs match whatever protoc and grpcio are installed, and are rebuilt by every test run.

Two generators, because Debian's two disagree on what they support:
  * messages (*_pb2.py) come from Debian's protoc (protobuf-compiler 3.21), whose output the protobuf 4.21
    runtime of python3-protobuf loads. The protoc bundled in python3-grpc-tools 1.14 is 3.5.1: its
    messages are refused by that runtime, and it rejects proto3 `optional`.
  * services (*_pb2_grpc.py) come from python3-grpc-tools' plugin, the only gRPC Python generator Debian
    ships. Because it cannot parse `optional`, it reads a copy of the protos with that label removed:
    the service stubs name only methods and message classes, never fields, so the copy yields the same code.
The generated imports ("from sergas.token.v1 import token_pb2") are rewritten to point inside the package
("from sergas_client._gen.sergas.token.v1 import ..."), so that no sys.path entry is needed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# The service protos the client needs, relative to proto/.
SERVICE_PROTOS = [
    "sergas/token/v1/token.proto",
    "sergas/audit/v1/audit.proto",
    "sergas/webhook/v1/webhook.proto",
]
# The client's own protos, relative to python/proto/ (messages only, no services).
CLIENT_PROTOS = ["sergas_rpc/status.proto"]
PACKAGE = "sergas_client"
GEN = PACKAGE + "._gen"
# Top-level proto packages that end up under _gen and whose imports are rewritten.
GENERATED_ROOTS = ("sergas", "sergas_rpc")
MIN_PROTOC = (3, 19)  # the first whose Python output the protobuf 4.x runtime accepts


def fail(msg):
    sys.stderr.write("generate: %s\n" % msg)
    sys.exit(1)


def protoc_version(protoc):
    out = subprocess.run([protoc, "--version"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    if not m:
        fail("cannot read the version of %s: %r" % (protoc, out))
    return int(m.group(1)), int(m.group(2))


def well_known_include(grpc_tools_dir):
    """The directory holding google/protobuf/*.proto: libprotobuf-dev's, else the copy in grpc_tools."""
    for d in ("/usr/include", os.path.join(grpc_tools_dir, "_proto")):
        if os.path.exists(os.path.join(d, "google", "protobuf", "duration.proto")):
            return d
    fail("no google/protobuf/duration.proto (install protobuf-compiler and python3-grpc-tools)")


def without_optional(src_dir, dst_dir, rel):
    """Copies src_dir/rel to dst_dir/rel with proto3 `optional` field labels removed (see the docstring)."""
    with open(os.path.join(src_dir, rel), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"(?m)^(\s*)optional\s+", r"\1", text)
    out = os.path.join(dst_dir, rel)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


_IMPORT = re.compile(r"(?m)^(from|import) (%s)(?=[. ])" % "|".join(re.escape(r) for r in GENERATED_ROOTS))


def rewrite_imports(root):
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            new = _IMPORT.sub(lambda m: "%s %s.%s" % (m.group(1), GEN, m.group(2)), text)
            if new != text:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)


def add_init_files(root):
    """Makes every generated directory a regular package (namespace packages would work, but a regular
    package cannot be shadowed by an unrelated top-level `sergas` directory on the path)."""
    for dirpath, _, files in os.walk(root):
        if "__init__.py" not in files:
            open(os.path.join(dirpath, "__init__.py"), "w").close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "build"), help="where DIR/sergas_client is written")
    ap.add_argument("--protoc", default=shutil.which("protoc") or "/usr/bin/protoc", help="Debian's protoc")
    args = ap.parse_args()

    try:
        import grpc_tools
        from grpc_tools import protoc as grpc_protoc
    except ImportError:
        fail("python3-grpc-tools is not installed for %s (use Debian's /usr/bin/python3)" % sys.executable)
    if not os.path.exists(args.protoc):
        fail("protoc not found (apt-get install protobuf-compiler)")
    if protoc_version(args.protoc) < MIN_PROTOC:
        fail("%s is older than %d.%d" % (args.protoc, *MIN_PROTOC))
    wkt = well_known_include(os.path.dirname(grpc_tools.__file__))
    proto_dir, client_proto_dir = os.path.join(REPO, "proto"), os.path.join(HERE, "proto")

    out_pkg = os.path.join(os.path.abspath(args.out), PACKAGE)
    # Build next to the destination and swap it in, so that a failed run leaves the last good package
    # and a concurrent reader never sees half of one.
    os.makedirs(os.path.dirname(out_pkg), exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".sergas_client-", dir=os.path.dirname(out_pkg))
    try:
        pkg = os.path.join(stage, PACKAGE)
        shutil.copytree(os.path.join(HERE, PACKAGE), pkg, ignore=shutil.ignore_patterns("__pycache__", "_gen"))
        gen = os.path.join(pkg, "_gen")
        os.makedirs(gen)
        subprocess.run(
            [args.protoc, "-I" + proto_dir, "-I" + client_proto_dir, "-I" + wkt, "--python_out=" + gen]
            + [os.path.join(proto_dir, p) for p in SERVICE_PROTOS]
            + [os.path.join(client_proto_dir, p) for p in CLIENT_PROTOS],
            check=True,
        )
        with tempfile.TemporaryDirectory() as plain:
            for p in SERVICE_PROTOS:
                without_optional(proto_dir, plain, p)
            rc = grpc_protoc.main(
                ["grpc_tools.protoc", "-I" + plain, "-I" + wkt, "--grpc_python_out=" + gen]
                + [os.path.join(plain, p) for p in SERVICE_PROTOS]
            )
            if rc != 0:
                fail("grpc_tools.protoc failed (exit %d)" % rc)
        rewrite_imports(gen)
        add_init_files(gen)
        old = out_pkg + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(out_pkg):
            os.rename(out_pkg, old)
        os.rename(pkg, out_pkg)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print("generate: wrote %s" % out_pkg)


if __name__ == "__main__":
    main()
