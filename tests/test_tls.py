"""Upstream calls over TLS: the blocking and the asyncio OpenAI adapters against a loopback HTTPS
fake whose certificate a test CA signed, trusted through SSL_CERT_FILE (as a company CA would be)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from r42.providers import Endpoint, ProviderError
from r42.providers import http11
from r42.providers.openai_compat import AsyncOpenAICompatAdapter, OpenAICompatAdapter
from tests.fakes import OpenAIFake

QUESTION = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def certificate(tmp_path, name: str):
    """(certificate file, key file) for localhost and 127.0.0.1, self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def https_fake(tmp_path, monkeypatch):
    cert_file, key_file = certificate(tmp_path, "r42-test-upstream")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    with OpenAIFake(reply="Over TLS.") as fake:
        fake._httpd.socket = server_tls.wrap_socket(fake._httpd.socket, server_side=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        http11.tls_context.cache_clear()
        yield fake, fake.base_url.replace("http://", "https://")
    http11.tls_context.cache_clear()


def endpoint(url: str) -> Endpoint:
    return Endpoint("openai", "openai", url, "sk-test", connect_timeout=5, read_timeout=5)


def test_blocking_adapter_over_tls(https_fake):
    fake, url = https_fake
    adapter = OpenAICompatAdapter(endpoint(url))
    for _ in range(2):  # the second request on the kept-alive TLS connection
        assert adapter.complete(QUESTION)["choices"][0]["message"]["content"] == "Over TLS."
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in adapter.stream(QUESTION) if c["choices"])
    assert text == "Over TLS."
    assert len(fake.requests) == 3


def test_asyncio_adapter_over_tls(https_fake):
    fake, url = https_fake

    async def run():
        adapter = AsyncOpenAICompatAdapter(endpoint(url))
        answers = [await adapter.complete(QUESTION) for _ in range(2)]
        chunks = [c async for c in adapter.stream(QUESTION)]
        return answers, chunks

    answers, chunks = asyncio.run(run())
    assert [a["choices"][0]["message"]["content"] for a in answers] == ["Over TLS."] * 2
    assert "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"]) == "Over TLS."


def test_an_untrusted_certificate_is_refused(https_fake, tmp_path, monkeypatch):
    fake, url = https_fake
    other, _ = certificate(tmp_path, "someone-else")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    http11.tls_context.cache_clear()
    with pytest.raises(ProviderError) as caught:
        OpenAICompatAdapter(endpoint(url.replace("127.0.0.1", "localhost"))).complete(QUESTION)
    assert caught.value.retryable and "TLS" in caught.value.message

    async def run():
        await AsyncOpenAICompatAdapter(endpoint(url.replace("127.0.0.1", "localhost"))).complete(QUESTION)

    with pytest.raises(ProviderError):
        asyncio.run(run())
    assert fake.requests == []
