"""shipit: agentless deploy and provisioning for Python web apps."""

__version__ = "0.1.0"
