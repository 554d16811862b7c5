"""The connect function as a team would write it by hand: the baseline of `make bench`.

Python 3.12 style, boto3 and requests, the same Stara and Leaf calls as the Rust `connect`
function, and no cleverness: the clients and the Leaf token are made once per process (as any
Lambda guide says), everything else happens in sequence, one grower after another, and nothing
is retried or cached. It serves `POST /connections` (API Gateway HTTP API) and SQS batches.
bench/src/python.rs runs it under awslambdaric (`bench/python/connect-python`).
"""

import json
import os

import boto3
import requests

STARA = os.environ["STARA_BASE_URL"]
LEAF = os.environ["LEAF_BASE_URL"]
PREFIX = os.environ.get("STARA_SECRET_PREFIX", "stara-connect/growers/")
TIMEOUT = 10

secrets = boto3.client("secretsmanager")
http = requests.Session()
leaf_token = None


def secret(secret_id):
    return json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])


def leaf_headers():
    global leaf_token
    if leaf_token is None:
        owner = secret(os.environ["LEAF_SECRET_ID"])
        answer = http.post(
            f"{LEAF}/api/authenticate",
            json={"username": owner["username"], "password": owner["password"]},
            timeout=TIMEOUT,
        )
        answer.raise_for_status()
        leaf_token = answer.json()["id_token"]
    return {"Authorization": f"Bearer {leaf_token}"}


class Failed(Exception):
    def __init__(self, status, code):
        super().__init__(code)
        self.status = status
        self.code = code


def connect(user, force):
    credentials_url = f"{LEAF}/services/usermanagement/api/users/{user}/stara-credentials"
    held = http.get(credentials_url, headers=leaf_headers(), timeout=TIMEOUT)
    if held.status_code == 200:
        status = held.json()["status"]
        if status == "OK" and not force:
            return 200, {"leafUserId": user, "outcome": "already_connected"}
    elif held.status_code == 404:
        known = http.get(f"{LEAF}/services/usermanagement/api/users/{user}", headers=leaf_headers(),
                         timeout=TIMEOUT)
        if known.status_code == 404:
            raise Failed(404, "leaf_user_not_found")
        known.raise_for_status()
    else:
        held.raise_for_status()

    try:
        login = secret(PREFIX + user)
    except secrets.exceptions.ResourceNotFoundException:
        raise Failed(404, "grower_login_not_found") from None
    auth = http.post(f"{STARA}/autenticacao", json={"login": login["login"], "password": login["password"]},
                     timeout=TIMEOUT)
    if auth.status_code in (400, 401, 403):
        raise Failed(422, "stara_login_rejected")
    auth.raise_for_status()
    api_key = auth.json()["apiKey"]
    token = http.post(f"{STARA}/token", json={"apiKey": api_key}, timeout=TIMEOUT)
    token.raise_for_status()
    tokens = token.json()

    if held.status_code == 200:
        http.delete(credentials_url, headers=leaf_headers(), timeout=TIMEOUT).raise_for_status()
    body = {"apiKey": api_key, "accessToken": tokens["accessToken"],
            "accessTokenClient": tokens["accessTokenClient"], "refreshToken": tokens["refreshToken"]}
    created = http.post(credentials_url, headers=leaf_headers(), json=body, timeout=TIMEOUT)
    created.raise_for_status()
    attached = created.json()
    outcome = "reconnected" if held.status_code == 200 else "connected"
    return 201, {"leafUserId": user, "outcome": outcome, "credentialsId": attached["id"],
                 "leafStatus": attached["status"]}


def handler(event, context):
    if "Records" in event:
        failures = []
        for record in event["Records"]:
            try:
                request = json.loads(record["body"])
                connect(request["leafUserId"], request.get("force", False))
            except Failed as e:
                print(json.dumps({"message": "not connected", "code": e.code}))
            except Exception as e:
                print(json.dumps({"message": "retry later", "error": type(e).__name__}))
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    request = json.loads(event.get("body") or "{}")
    try:
        status, body = connect(request["leafUserId"], request.get("force", False))
    except Failed as e:
        status, body = e.status, {"outcome": "failed", "error": {"code": e.code}}
    except requests.RequestException as e:
        status, body = 502, {"outcome": "failed", "error": {"code": "upstream", "type": type(e).__name__}}
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
