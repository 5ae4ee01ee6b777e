"""The workflow of aiocouch's documentation, end to end, printing each step's outcome.

Runs against ``COUCHDB_URL`` (with ``COUCHDB_USER``/``COUCHDB_PASSWORD``) when it is set,
otherwise against a local pouchdb-server started for the demo (``make demo`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiocouch
from aiocouch import CouchDB, SecurityDocument
from aiocouch.document import Document
from testserver.pouchdb_server import server_from_environment


def step(title: str, outcome: object) -> None:
    """Prints one step of the demo and its outcome."""
    print(f"--- {title}\n{outcome}\n")


async def demo(server_url: str, user: str, password: str) -> None:
    """Creates, modifies, secures and attaches to documents in a scratch database."""
    name = f"aiocouch_demo_{uuid.uuid4().hex[:8]}"
    async with CouchDB(server_url, user, password) as client:
        database = await client.create(name, exists_ok=True)
        step("created database", f"{database.id}: {await database.info()}")
        try:
            doc = await database.create("new_doc")
            doc["name"] = "The new document"
            response = await doc.save()
            step("created a document", f"HTTP {response.status if response else '-'}: {doc}")

            doc = await database["new_doc"]
            doc["name"] = "The modified document"
            await doc.save()
            step("modified it", doc)

            async with Document(database, "secret_agents") as document:
                document["name"] = "James Bond"
                document["code"] = "007"
            step("context manager saved", await database["secret_agents"])

            async with SecurityDocument(database) as security_doc:
                security_doc.add_member("bond")
                security_doc.add_admin("fleming")
            step("security document", await database.security())

            stale = Document(database, "new_doc", data={"name": "A competing write"})
            with contextlib.suppress(aiocouch.ConflictError):
                await stale.save()
            step("conflict ignored", f"server still has: {(await database['new_doc'])['name']}")

            try:
                await stale.save()
            except aiocouch.ConflictError:
                info = await stale.info()
                stale.rev = info["rev"]
                await stale.save()
            step("conflict overridden", await database["new_doc"])

            parent = await database["secret_agents"]
            attachment = parent.attachment("dossier.txt")
            await attachment.save(b"Licence to kill.", "text/plain")
            step(
                "attachment saved",
                f"{attachment.id} ({attachment.content_type}): {await attachment.fetch()!r}",
            )

            ids = [doc_id async for doc_id in database.akeys()]
            step("all documents", ids)
        finally:
            await database.delete()
            step("cleaned up", f"deleted {database.id}")


def main() -> None:
    """Runs the demo on COUCHDB_URL or on a local server started for it."""
    with server_from_environment() as server:
        asyncio.run(demo(server.url, server.user, server.password))


if __name__ == "__main__":
    main()
