"""The S3-compatible server of deploy/s3/local-s3.sh (MinIO on one local
directory), checked for what an s3:// warehouse needs of it: Parquet written
and read back through pyarrow's S3 client (multipart upload included), ranged
reads, listing and deleting, DuckDB reading the Parquet files, and create-only
and compare-and-swap PUTs (If-None-Match: *, If-Match) refused with 412.

Needs the variables `deploy/s3/local-s3.sh env` prints. Without them the tests
fail under FOOTFALL_REQUIRE_S3=1 or CI=true, and are skipped otherwise.

DuckDB reads through its httpfs extension when that loads without a download
(this DuckDB's httpfs is not on PyPI and its extension site is unreachable
here), else through a pyarrow dataset on the same S3 client; see
deploy/s3/README.md."""

import os
import time

import pytest

import footfall_support as ff

pa = pytest.importorskip("pyarrow")
import pyarrow.compute as pc  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


@pytest.fixture
def s3():
    return ff.require_s3_env()


@pytest.fixture
def fs(s3):
    return ff.s3_filesystem(s3)


@pytest.fixture
def prefix(s3, fs):
    """A fresh top-level key prefix in the bucket, removed afterwards (one
    level only: pyarrow leaves a marker object for a deleted directory's
    parent unless that parent is the bucket)."""
    p = f"{s3['bucket']}/test-s3-server-{os.getpid()}-{time.time_ns()}"
    yield p
    try:
        fs.delete_dir(p)
    except (FileNotFoundError, OSError):
        pass


@pytest.fixture
def client(s3):
    """A botocore S3 client (botocore sends the conditional-write headers; pyarrow cannot)."""
    pytest.importorskip(
        "botocore.session", reason="botocore is not installed (pip install botocore): conditional PUTs not checked"
    )
    return client_for(s3)


def client_for(s3):
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s3["endpoint"],
        region_name=s3["region"],
        aws_access_key_id=s3["key"],
        aws_secret_access_key=s3["secret"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def split(path):
    bucket, _, key = path.partition("/")
    return bucket, key


def visits():
    return pa.table(
        {
            "day": pa.array(["2026-12-01", "2026-12-01", "2026-12-02", "2026-12-02"]),
            "path": pa.array(["/", "/about", "/", "/feed.xml"]),
            "visitors": pa.array([3, 1, 5, 2], pa.int64()),
        }
    )


def test_parquet_written_listed_read_back_and_deleted(fs, prefix):
    table = visits()
    for day in ("2026-12-01", "2026-12-02"):
        part = table.filter(pc.equal(table["day"], day))
        pq.write_table(part, f"{prefix}/day={day}/part-0.parquet", filesystem=fs)

    listed = fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
    files = sorted(i.path for i in listed if i.type == pafs.FileType.File)
    assert files == [f"{prefix}/day=2026-12-01/part-0.parquet", f"{prefix}/day=2026-12-02/part-0.parquet"]

    back = pq.read_table(f"{prefix}/day=2026-12-02/part-0.parquet", filesystem=fs)
    assert back.to_pydict() == {"day": ["2026-12-02"] * 2, "path": ["/", "/feed.xml"], "visitors": [5, 2]}

    fs.delete_file(files[0])
    assert fs.get_file_info(files[0]).type == pafs.FileType.NotFound
    assert fs.get_file_info(files[1]).type == pafs.FileType.File


def test_large_file_goes_through_multipart_upload_and_ranged_reads(fs, prefix):
    # 12 MiB of incompressible bytes: more than pyarrow's 5 MiB first part, so
    # the write is a multipart upload of several parts.
    data = os.urandom(12 * 1024 * 1024)
    path = f"{prefix}/big.bin"
    with fs.open_output_stream(path) as out:
        for i in range(0, len(data), 1024 * 1024):
            out.write(data[i : i + 1024 * 1024])
    assert fs.get_file_info(path).size == len(data)

    with fs.open_input_file(path) as f:
        # read_at is a ranged GET; a Parquet footer read is the same request.
        assert f.read_at(100, 7 * 1024 * 1024 - 50) == data[7 * 1024 * 1024 - 50 : 7 * 1024 * 1024 + 50]
        assert f.read_at(8, len(data) - 8) == data[-8:]
        f.seek(0)
        assert f.read() == data


def test_ranged_get_answers_206_with_only_the_range(client, s3, prefix):
    bucket, key = split(f"{prefix}/r.bin")
    client.put_object(Bucket=bucket, Key=key, Body=b"0123456789")
    r = client.get_object(Bucket=bucket, Key=key, Range="bytes=2-5")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == "bytes 2-5/10"
    assert r["Body"].read() == b"2345"
    # Suffix range: how Parquet readers fetch the footer without a HEAD first.
    assert client.get_object(Bucket=bucket, Key=key, Range="bytes=-4")["Body"].read() == b"6789"


def test_duckdb_reads_the_parquet_files(s3, fs, prefix):
    duckdb = pytest.importorskip("duckdb")
    table = visits()
    pq.write_table(table.slice(0, 2), f"{prefix}/day=2026-12-01/part-0.parquet", filesystem=fs)
    pq.write_table(table.slice(2), f"{prefix}/day=2026-12-02/part-0.parquet", filesystem=fs)
    query = "SELECT day, sum(visitors) AS v, count(*) AS n FROM {} GROUP BY day ORDER BY day"

    # httpfs when it loads, else an Arrow dataset on pyarrow's S3 client
    # (projection and filters are pushed down into the dataset scan).
    con, source = ff.duckdb_on_s3(s3, fs)
    rows = con.execute(query.format(source(prefix, hive=False))).fetchall()
    assert con.execute(f"SELECT count(*) FROM {source(prefix, hive=False)} WHERE visitors >= 3").fetchone() == (2,)
    con.close()
    assert rows == [("2026-12-01", 4, 2), ("2026-12-02", 7, 2)]


def status_of(error):
    return error.response["ResponseMetadata"]["HTTPStatusCode"]


def test_create_only_put_is_refused_with_412_when_the_object_exists(client, prefix):
    from botocore.exceptions import ClientError

    bucket, key = split(f"{prefix}/lock")
    first = client.put_object(Bucket=bucket, Key=key, Body=b"owner-1", IfNoneMatch="*")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=bucket, Key=key, Body=b"owner-2", IfNoneMatch="*")
    assert status_of(refused.value) == 412, refused.value.response
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"owner-1"


def test_racing_create_only_puts_have_exactly_one_winner(s3, client, prefix):
    """What a lock taken with a create-only PUT relies on: of writers racing
    for one key, one succeeds, every other gets 412, and the object is the
    winner's whole body (a server that checks existence before writing,
    without a lock, lets several through)."""
    import threading

    from botocore.exceptions import ClientError

    bucket, _ = split(prefix)
    writers = 8
    # One client per writer, as separate processes would have.
    clients = [client] + [client_for(s3) for _ in range(writers - 1)]
    for round_ in range(5):
        key = f"{split(prefix)[1]}/race-{round_}"
        outcomes = {}
        start = threading.Barrier(writers)

        def put(i):
            start.wait()
            try:
                clients[i].put_object(Bucket=bucket, Key=key, Body=f"writer-{i};".encode() * 4096, IfNoneMatch="*")
                outcomes[i] = 200
            except ClientError as e:
                outcomes[i] = status_of(e)

        threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, s in outcomes.items() if s == 200]
        assert len(winners) == 1, f"round {round_}: statuses {outcomes}"
        assert set(outcomes.values()) == {200, 412}, f"round {round_}: statuses {outcomes}"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == f"writer-{winners[0]};".encode() * 4096


def test_put_if_match_replaces_only_the_version_it_names(client, prefix):
    from botocore.exceptions import ClientError

    bucket, key = split(f"{prefix}/manifest")
    etag = client.put_object(Bucket=bucket, Key=key, Body=b"v1")["ETag"]
    client.put_object(Bucket=bucket, Key=key, Body=b"v2", IfMatch=etag)
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket=bucket, Key=key, Body=b"v3", IfMatch=etag)
    assert status_of(stale.value) == 412, stale.value.response
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"v2"


def test_create_only_multipart_completion_is_refused_with_412(client, prefix):
    from botocore.exceptions import ClientError

    bucket, key = split(f"{prefix}/taken")
    client.put_object(Bucket=bucket, Key=key, Body=b"first")
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"second")["ETag"]
        with pytest.raises(ClientError) as refused:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                IfNoneMatch="*",
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
            )
        assert status_of(refused.value) == 412, refused.value.response
    finally:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        except ClientError:
            pass
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first"
