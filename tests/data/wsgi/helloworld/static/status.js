window.helloworldStatusLoads = (window.helloworldStatusLoads || 0) + 1;
