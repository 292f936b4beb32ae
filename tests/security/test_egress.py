"""The outbound address policy (issue 11, item 5), offline: an injected resolver, loopback only."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from plugin.settings import Settings
from plugin.web.egress import Egress, EgressRefused, embedded_ipv4, parse_networks
from tests.security.helpers import Resolver

REFUSED = [
    "0.0.0.0",
    "10.1.2.3",
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "100.100.100.200",  # Alibaba Cloud's metadata service, inside 100.64.0.0/10
    "127.0.0.1",
    "169.254.169.254",  # the cloud metadata service
    "172.16.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fec0::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "3fff::1",
    "100::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::ffff:0:10.0.0.1",  # IPv4-translated
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:6464:64c8::1",  # 6to4 of 100.100.100.200
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:5db8:d822::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_not_globally_routable_addresses_are_refused(address: str) -> None:
    assert not Egress().acceptable(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_accepted(address: str) -> None:
    assert Egress().acceptable(ipaddress.ip_address(address))


def test_embedded_addresses_are_found() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("2002:a9fe:a9fe::")) == ipaddress.IPv4Address(
        "169.254.169.254"
    )
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::808:808")) == ipaddress.IPv4Address("8.8.8.8")
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) is None


def test_the_operator_may_allow_exact_networks() -> None:
    policy = Egress(allowed_networks=parse_networks("127.0.0.0/8, ::1/128"))
    assert policy.acceptable(ipaddress.ip_address("127.0.0.1"))
    assert policy.acceptable(ipaddress.ip_address("::1"))
    assert not policy.acceptable(ipaddress.ip_address("10.0.0.1"))
    assert not policy.acceptable(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert policy.operator_allowed([ipaddress.ip_address("127.0.0.2")])
    assert not policy.operator_allowed([ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("8.8.8.8")])


def test_a_typo_in_the_setting_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not an IP network"):
        Settings(allowed_private_networks="127.0.0.0/8, localhost")
    assert Settings(allowed_private_networks=" 10.0.0.0/8 ,").allowed_private_networks


async def test_check_resolves_once_and_needs_every_answer_public() -> None:
    resolver = Resolver({"shop.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.0.0.1"]})
    policy = Egress(resolver=resolver)
    target = await policy.check("https://shop.test/graphql/")
    assert target.host == "shop.test" and target.port == 443
    assert target.addresses == (ipaddress.ip_address("93.184.216.34"),)
    with pytest.raises(EgressRefused) as refused:
        await policy.check("https://mixed.test/graphql/")
    assert refused.value.kind == "private"
    assert resolver.calls == ["shop.test", "mixed.test"]


async def test_names_are_resolved_idna_encoded_and_bad_ones_refused() -> None:
    resolver = Resolver({"xn--bcher-kva.test": ["93.184.216.34"]})
    policy = Egress(resolver=resolver)
    assert (await policy.check("https://bücher.test/")).host == "xn--bcher-kva.test"
    for bad in ("https://a..b/", "https://%41.test/", "https://-x.test/", "https://☃.test/", "ftp://x.test/"):
        with pytest.raises(EgressRefused) as refused:
            await policy.check(bad)
        assert refused.value.kind == "invalid", bad
    with pytest.raises(EgressRefused) as refused:
        await policy.check("https://nowhere.test/")
    assert refused.value.kind == "unresolvable" and "resolver detail" not in refused.value.reason
    assert resolver.calls == ["xn--bcher-kva.test", "nowhere.test"]  # nothing invalid was looked up


@asynccontextmanager
async def http_server(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[int, list[str]]]:
    """A one-line HTTP server on 127.0.0.1; yields its port and the Host headers it received."""
    hosts: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ssl.SSLError, ConnectionError):
            writer.close()
            return
        hosts.extend(
            line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("host:")
        )
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=ssl_context)
    async with server:
        yield server.sockets[0].getsockname()[1], hosts


async def test_the_client_connects_to_the_checked_address_and_never_resolves_again() -> None:
    # Rebinding: the first answer is loopback (allowed here), any later one would be 10.0.0.1.
    resolver = Resolver({"shop.test": ["127.0.0.1"]})
    policy = Egress(allowed_networks=parse_networks("127.0.0.0/8"), resolver=resolver)
    async with http_server() as (port, hosts):
        target = await policy.check(f"http://shop.test:{port}/")
        resolver.names["shop.test"] = ["10.0.0.1"]
        async with policy.client(target) as client:
            for _ in range(3):
                assert (await client.get(f"http://shop.test:{port}/graphql/")).text == "ok"
            with pytest.raises(EgressRefused):
                await client.get(f"http://other.test:{port}/")  # a host nobody checked
    assert hosts == [f"shop.test:{port}"] * 3
    assert resolver.calls == ["shop.test"]


def _certificate(name: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def test_tls_keeps_the_name_for_sni_and_the_certificate_check(tmp_path: Path) -> None:
    cert, key = _certificate("shop.test")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment]
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    resolver = Resolver({"shop.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]})
    policy = Egress(allowed_networks=parse_networks("127.0.0.0/8"), resolver=resolver, ssl_context=trusting)
    async with http_server(server_context) as (port, hosts):
        target = await policy.check(f"https://shop.test:{port}/")
        async with policy.client(target) as client:
            assert (await client.get(f"https://shop.test:{port}/")).text == "ok"
        wrong = await policy.check(f"https://wrong.test:{port}/")  # same address, other name
        async with policy.client(wrong) as client:
            with pytest.raises(httpx.ConnectError):  # the certificate is for shop.test
                await client.get(f"https://wrong.test:{port}/")
    assert names[0] == "shop.test" and hosts == [f"shop.test:{port}"]
