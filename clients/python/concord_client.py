"""A researcher's client of a Concord coordinator, in Python.

It speaks the coordinator's gRPC service (``proto/concord.proto``, ``concord.v1.Coordinator``)
itself, over mutual TLS with the researcher's certificate: submit, follow, list, read results,
see one's privacy budget. The two steps that hold cryptography stay in Rust, in the ``concord``
binary, and are called without any network (see ``docs/clients.md``):

- ``concord query … prepare``: the query signed with the researcher's certificate key and
  sealed to their result key, as a protobuf ``QuerySpec`` this client submits;
- ``concord query … open``: a released ``QueryStatus`` (as ``Get`` answers it) opened with
  the researcher's result key, as JSON rows this client turns into a table.

The gRPC code is generated from the proto at import (``grpcio-tools``), so the client always
speaks the proto of its checkout. Example::

    from concord_client import Researcher, phase_name
    alice = Researcher("https://coordinator.example:7400", tls_dir="ca/", name="alice")
    query = alice.submit("events-by-month-tlp-distribution", start="2025-01", months=12)
    for status in alice.watch(query):
        print(phase_name(status), status.detail)
    table = alice.table(query)        # a pandas DataFrame: one column per dimension, then value
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

import grpc

ROOT = Path(__file__).resolve().parents[2]


def _generated():
    """The proto's Python modules, generated once per process into a temporary directory."""
    from grpc_tools import protoc

    proto = Path(os.environ.get("CONCORD_PROTO", ROOT / "proto" / "concord.proto")).resolve()
    out = tempfile.mkdtemp(prefix="concord-proto-")
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{proto.parent}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(proto),
        ]
    )
    if code != 0:
        raise RuntimeError(f"generating the gRPC code from {proto} failed ({code})")
    sys.path.insert(0, out)
    stem = proto.stem
    return importlib.import_module(f"{stem}_pb2"), importlib.import_module(f"{stem}_pb2_grpc")


pb, pb_grpc = _generated()

PHASES = {
    pb.QUERY_PHASE_SUBMITTED: "submitted",
    pb.QUERY_PHASE_PROPOSED: "proposed",
    pb.QUERY_PHASE_CONTRIBUTING: "contributing",
    pb.QUERY_PHASE_VERIFYING: "verifying",
    pb.QUERY_PHASE_DECRYPTING: "decrypting",
    pb.QUERY_PHASE_RELEASED: "released",
    pb.QUERY_PHASE_FAILED: "failed",
}


class ConcordError(Exception):
    """A refusal or failure, in the coordinator's (or the ``concord`` binary's) words."""


class Researcher:
    """A researcher's connection to a coordinator."""

    def __init__(
        self,
        coordinator: str,
        tls_dir: str | os.PathLike,
        name: str,
        server_name: str = "coordinator",
        keys_dir: Optional[str | os.PathLike] = None,
        concord: str = "concord",
    ):
        self.tls_dir, self.name = Path(tls_dir), name
        self.keys_dir = Path(keys_dir) if keys_dir else self.tls_dir
        self.concord = concord
        self.coordinator = coordinator
        read = lambda f: (self.tls_dir / f).read_bytes()  # noqa: E731
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read("ca.pem"),
            private_key=read(f"{name}.key"),
            certificate_chain=read(f"{name}.pem"),
        )
        target = coordinator.removeprefix("https://")
        self.channel = grpc.secure_channel(
            target, credentials, options=[("grpc.ssl_target_name_override", server_name)]
        )
        self.stub = pb_grpc.CoordinatorStub(self.channel)

    def close(self):
        self.channel.close()

    # -- the Rust side, offline --------------------------------------------------------

    def _concord(self, args: list[str], stdin: bytes = b"") -> bytes:
        command = [
            self.concord,
            "query",
            "--coordinator",
            self.coordinator,
            "--tls-dir",
            str(self.tls_dir),
            "--keys-dir",
            str(self.keys_dir),
            "--name",
            self.name,
            *args,
        ]
        done = subprocess.run(command, input=stdin, capture_output=True)
        if done.returncode != 0:
            raise ConcordError(done.stderr.decode().strip())
        return done.stdout

    # -- the coordinator ---------------------------------------------------------------

    def _call(self, method, request):
        try:
            return method(request)
        except grpc.RpcError as e:
            raise ConcordError(f"{e.code().name.lower()}: {e.details()}") from None

    def submit(
        self,
        template: str,
        start: str,
        months: int = 12,
        min_institutions: int = 3,
        epsilon: Optional[float] = None,
        delta: float = 1e-6,
        public: bool = False,
        bins: Union[int, str, None] = None,
    ) -> str:
        """Submits a query; returns its id. Sealed to this researcher's key unless ``public``.
        ``bins``: an overlap template's bins per histogram (a multiple of 16384, of 32768 above 16
        institutions), or ``"auto"``:
        first an ``indicators-held`` query with the same terms, waited for, and the bins sized
        from its result by ``concord query bins`` (as ``concord query submit --bins auto``)."""
        if bins == "auto":
            held = self.submit("indicators-held", start, months, min_institutions, epsilon,
                               delta, public)
            status = None
            for status in self.watch(held):
                pass
            if status is None or status.phase != pb.QUERY_PHASE_RELEASED:
                detail = status.detail if status is not None else "no status"
                raise ConcordError(f"query {held}, which sizes the bins, failed: {detail}")
            # the result travels in Get's answer, not in Watch's
            status = self.status(held)
            bins = int(self._concord(["bins", "--template", template],
                                     stdin=status.SerializeToString()))
        # the query goes to every enrolled institution, which sizes its agreement (an
        # overlap query's parameter set, hence the result key it is sealed to)
        args = ["prepare", "--template", template, "--from", start, "--months", str(months),
                "--min-institutions", str(min_institutions),
                "--institutions", str(len(self.members()))]
        if epsilon is not None:
            args += ["--epsilon", str(epsilon), "--delta", str(delta)]
        if public:
            args.append("--public")
        if bins is not None:
            args += ["--bins", str(bins)]
        spec = pb.QuerySpec.FromString(self._concord(args))
        return self._call(self.stub.Submit, spec).query_id

    def status(self, query_id: str):
        """The query's status (``QueryStatus``), its result once released."""
        return self._call(self.stub.Get, pb.QueryRef(query_id=query_id))

    def watch(self, query_id: str) -> Iterator:
        """Each status of the query as it changes, until it is released or failed."""
        try:
            for status in self.stub.Watch(pb.QueryRef(query_id=query_id)):
                yield status
        except grpc.RpcError as e:
            raise ConcordError(f"{e.code().name.lower()}: {e.details()}") from None

    def queries(self):
        """This researcher's queries, oldest first (without their cells)."""
        return list(self._call(self.stub.List, pb.ListRequest()).queries)

    def members(self) -> list[tuple[int, str]]:
        """The enrolled institutions' nodes: (party number, name)."""
        return [(m.party, m.name) for m in self._call(self.stub.Members, pb.ListRequest()).members]

    def budget(self):
        """This researcher's privacy budget at every node (``BudgetList``)."""
        return self._call(self.stub.Budget, pb.ListRequest())

    def result(self, query_id: str) -> dict:
        """A released query's result: terms, contributors, and every cell with its labels (as
        ``concord query result --json`` gives it), a sealed result opened with this
        researcher's key by the ``concord`` binary."""
        status = self.status(query_id)
        if status.phase != pb.QUERY_PHASE_RELEASED:
            raise ConcordError(
                f"query {query_id} is {PHASES.get(status.phase, status.phase)}: {status.detail}"
            )
        return json.loads(self._concord(["open"], stdin=status.SerializeToString()))

    def table(self, query_id: str):
        """A released result as a pandas DataFrame: one column per dimension, then ``value``
        (summary cells, such as sums, have their name in the first column)."""
        import pandas as pd

        result = self.result(query_id)
        dims = result["dimensions"]
        rows = [
            dict(zip(dims, row["cell"] + [None] * (len(dims) - len(row["cell"]))),
                 value=row["value"])
            for row in result["rows"]
        ]
        return pd.DataFrame(rows, columns=[*dims, "value"])


def phase_name(status) -> str:
    return PHASES.get(status.phase, str(status.phase))
