#!/usr/bin/env python3
"""Seeds a moto server for `make dev` and scripts/cargo-lambda-check.sh: the Leaf owner's secret,
one login secret per grower, and the connect FIFO queue (verify's CONNECT_QUEUE_URL).

  scripts/seed-moto.py --endpoint http://127.0.0.1:PORT --namespace NAME \
      --leaf-owner USER:PASSWORD --grower LEAF_USER_ID:LOGIN:PASSWORD ...

Prints one JSON line: {"leafSecretId", "growerPrefix", "queueUrl"}. Needs boto3 (in .venv, with moto).
"""

import argparse
import json

import boto3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--namespace", required=True, help="prefix of every secret and queue name")
    parser.add_argument("--leaf-owner", required=True, metavar="USER:PASSWORD")
    parser.add_argument("--grower", action="append", default=[], metavar="LEAF_USER_ID:LOGIN:PASSWORD")
    args = parser.parse_args()

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    secrets = session.client("secretsmanager", endpoint_url=args.endpoint)
    sqs = session.client("sqs", endpoint_url=args.endpoint)

    username, password = args.leaf_owner.split(":", 1)
    leaf_secret_id = f"{args.namespace}/leaf-owner"
    secrets.create_secret(Name=leaf_secret_id,
                          SecretString=json.dumps({"username": username, "password": password}))
    grower_prefix = f"{args.namespace}/growers/"
    for grower in args.grower:
        leaf_user_id, login, grower_password = grower.split(":", 2)
        secrets.create_secret(Name=grower_prefix + leaf_user_id,
                              SecretString=json.dumps({"login": login, "password": grower_password}))
    # As template.yaml declares ConnectQueue (nothing polls it here: repairs queued by verify wait).
    queue_url = sqs.create_queue(
        QueueName=f"{args.namespace.replace('/', '-')}-connect.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true",
                    "VisibilityTimeout": "180"})["QueueUrl"]
    print(json.dumps({"leafSecretId": leaf_secret_id, "growerPrefix": grower_prefix,
                      "queueUrl": queue_url}))


if __name__ == "__main__":
    main()
