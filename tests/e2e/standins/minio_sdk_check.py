#!/usr/bin/env python3
"""Drive the minio stand-in with MinIO's official Python SDK (minio-py: Minio + MinioAdmin), as omlboot's
bootstrap must: root creates the bucket, an unknown user is refused, add-user (encrypted body), policy attach
(encrypted both ways) and the older set-user-or-group-policy, then the user writes and reads an object.

  minio_sdk_check.py bootstrap ENDPOINT ROOT_USER ROOT_PASSWORD BUCKET APP_KEY APP_SECRET
  minio_sdk_check.py check     ENDPOINT APP_KEY APP_SECRET BUCKET          (after a restart: still works)
Prints one line per step; exits non-zero on the first surprise.
"""
import io
import sys

from minio import Minio
from minio.credentials import StaticProvider
from minio.error import S3Error
from minio.minioadmin import MinioAdmin


def expect_refused(what, fn, code):
    try:
        fn()
    except S3Error as e:
        if e.code != code:
            sys.exit(f"FAIL {what}: refused with {e.code}, expected {code}")
        print(f"ok {what}: refused ({e.code})")
        return
    sys.exit(f"FAIL {what}: accepted")


def put_get(c, bucket, key, data):
    c.put_object(bucket, key, io.BytesIO(data), len(data))
    r = c.get_object(bucket, key)
    try:
        got = r.read()
    finally:
        r.close()
        r.release_conn()
    if got != data:
        sys.exit(f"FAIL read back {key}: {got!r}")
    print(f"ok put+get {bucket}/{key} ({len(data)} bytes)")


def main():
    cmd, ep = sys.argv[1], sys.argv[2]
    if cmd == "bootstrap":
        ru, rp, bucket, ak, sk = sys.argv[3:8]
        root = Minio(ep, ru, rp, secure=False)
        if not root.bucket_exists(bucket):
            root.make_bucket(bucket)
        print(f"ok bucket {bucket}")
        app = Minio(ep, ak, sk, secure=False)
        expect_refused("put by an unknown user", lambda: put_get(app, bucket, "x.txt", b"x"), "InvalidAccessKeyId")
        wrong = Minio(ep, ru, rp + "x", secure=False)
        expect_refused("root with a wrong secret", lambda: wrong.bucket_exists(bucket), "SignatureDoesNotMatch")
        adm = MinioAdmin(ep, StaticProvider(ru, rp), secure=False)
        adm.user_add(ak, sk)
        print(f"ok user_add {ak}")
        expect_refused("put by a user without policy", lambda: put_get(app, bucket, "x.txt", b"x"), "AccessDenied")
        print("ok attach_policy:", adm.attach_policy(["readwrite"], user=ak))
        try:
            adm.attach_policy(["readwrite"], user=ak)
            sys.exit("FAIL attaching readwrite twice was accepted (MinIO answers PolicyChangeAlreadyApplied)")
        except Exception as e:  # noqa: BLE001
            print("ok attach twice refused:", str(e).split("Body:")[-1].strip()[:80])
        # The older API, on a second user.
        adm.user_add(ak + "2", sk + "2")
        adm.policy_set("readwrite", user=ak + "2")
        put_get(Minio(ep, ak + "2", sk + "2", secure=False), bucket, "policy-set.txt", b"set-user-or-group-policy")
        info = adm.user_info(ak)
        if '"readwrite"' not in info:
            sys.exit(f"FAIL user_info: {info}")
        print("ok user_info:", info)
        bad_admin = MinioAdmin(ep, StaticProvider(ak, sk), secure=False)
        try:
            bad_admin.user_add("intruder", "intruder-secret")
            sys.exit("FAIL admin call by a non-root user accepted")
        except Exception as e:  # noqa: BLE001
            if "403" not in str(e):
                sys.exit(f"FAIL admin call by a non-root user: {e}")
            print("ok admin call by a non-root user refused (403)")
        put_get(app, bucket, "recordings/e2e.wav", b"RIFF....WAVE" * 100)
    elif cmd == "check":
        ak, sk, bucket = sys.argv[3:6]
        app = Minio(ep, ak, sk, secure=False)
        r = app.get_object(bucket, "recordings/e2e.wav")
        got = r.read()
        r.close()
        if got != b"RIFF....WAVE" * 100:
            sys.exit("FAIL object lost")
        print("ok object kept")
        put_get(app, bucket, "after-restart.txt", b"still a user with readwrite")
    else:
        sys.exit(f"unknown command {cmd}")
    print("ALL OK")


if __name__ == "__main__":
    main()
